"""Training: the Trainer (start / pause / resume / step / stop from any thread) and its parts (minibatch and
full-batch L-BFGS steps, the training thread and its controls, observers, bounded history, snapshots and run
status), training slots, the progress/cancel protocol, the scikit-learn estimator.
"""
