"""Experiments beyond the live run: denoising, anomaly detection, self-taught learning, and the
common mistakes trained beside the correct objective.
"""
