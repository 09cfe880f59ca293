"""What every part of crypten-fl shares: the one exception type users see, progress callbacks,
manifests, outputs that never touch inputs and are written atomically, and write-error handling.

Both the data side (crypten_fl.mimic_etl) and the training side (crypten_fl.fedtrain) use it; it
imports neither.
"""

__version__ = "0.1.0"
