"""`crypten-fl evaluate`: metrics of finished runs, computed securely.

Modules: thresholds (decision rules on validation histograms), summary (additive per-hospital
summaries and the metrics computed from their sums), subgroups (age, sex, race), runs (opening
RUN/), job (what each hospital process runs), parties (launching the job and assembling its
results), cross_hospital (leave-one-hospital-out), runner (the `evaluate` entry point), tables,
report and plots (RUN/eval files). Comparisons across runs live in fedtrain/experiments/.
"""
