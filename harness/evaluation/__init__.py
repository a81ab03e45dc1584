"""Metrics, bootstrap confidence intervals, scoring splits, and reloading a logged predictor."""
