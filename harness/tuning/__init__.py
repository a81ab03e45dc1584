"""Hyperparameter studies: Ray Tune + Optuna TPE + ASHA over one cell, trials, search spaces, progress."""
