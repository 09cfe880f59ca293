"""Names of every kind of plaintext a party can obtain from CrypTen (see secure/reveal_audit.py).

docs/strategies.md lists, per strategy, which of these each party receives; tests/test_reveals.py
checks the list against what the parties actually obtain.
"""

MOMENTS = "sum of normalisation moments (all hospitals)"
WEIGHTED_MODEL_SUM = "weighted sum of shared parameters and total weight"
MEAN_OF_HEADS = "mean of personal heads"
NOISY_MODEL_SUM = ("noisy sum of clipped model updates and the number of hospitals that took part "
                   "(--central-dp)")
TRAINING_RECORDS = "total number of training records (--dp-noise distributed)"
NOISY_GRADIENT_SUM = ("noisy sum of every hospital's clipped per-record gradients, each DP-SGD "
                      "step (--dp-noise distributed)")
METRIC_HISTOGRAMS = "summed test-score histograms"
FINAL_SERVER_WEIGHTS = "final server-model weights (end of training)"
OWN_ROW_LOGITS = "logits of the party's own rows"
OWN_CUT_GRADIENT = "cut-layer gradient of the party's own rows"
JOINT_LOGITS_TO_LABEL_PARTY = "joint-model logits (label party only)"
OWN_BOTTOM_GRADIENT = "gradient of the party's own bottom output"
MASKED_OPENINGS = ("masked openings inside CrypTen's protocols (a value plus a fresh uniformly "
                   "random mask from the dealer: squares, comparisons)")

# evaluation (fedtrain/evaluate/job.py)
EVAL_VALIDATION_HISTOGRAMS = "summed validation-score histograms (threshold choice)"
EVAL_TEST_SUMMARY = ("summed test-score histograms, squared errors and confusion counts "
                     "(overall and per subgroup)")
UNSEEN_HOSPITAL_MODEL = "mean of the training hospitals' final models (for an unseen hospital)"

# membership (fedtrain/run/rejoin.py)
JOIN_REQUESTS = "which absent hospitals ask to rejoin (round boundary)"
GLOBAL_STATE = "current global state (to a hospital that rejoins or resumes behind)"

# membership-inference audit (fedtrain/privacy/audit_job.py)
AUDIT_HISTOGRAMS = "summed membership-attack score histograms (audit)"
