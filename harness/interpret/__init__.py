"""Interpretation of trained models: ISM, gradient attributions, attention maps, and their figures."""
