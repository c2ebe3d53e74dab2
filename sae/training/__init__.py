"""Training: the Trainer (start / pause / resume / step / stop from any thread), its bounded history,
snapshots and run status, training slots, the progress/cancel protocol, the scikit-learn estimator.
"""
