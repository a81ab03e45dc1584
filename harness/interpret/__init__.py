"""Interpretation of trained models: ISM, gradient attributions, attention maps, and their figures."""

# The method names, free of torch and captum, so that `regbench explain --help` can list them cheaply.
GRADIENT_METHODS = ("saliency", "integrated_gradients")  # computed by harness.interpret.attributions
METHODS = (*GRADIENT_METHODS, "ism", "attention")
