"""Runs kept on disk: the run store (SQLite + safetensors), run directories and model files, exports,
the recorder that checkpoints a Trainer, comparisons, sweeps and the run table.
"""
