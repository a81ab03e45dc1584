"""One training run: model assembly (adapters + head), the fit loop, resources, the tracked run."""
