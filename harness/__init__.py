"""regbench harness: registry, encoding, training, metrics, tracking, studies and CLI."""

import warnings

# pynvml (imported by torch.cuda and by harness.training.resources) warns at import that it is deprecated.
warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
