"""DNA language models (DNABERT-2, Nucleotide Transformer): embeddings and the probe plugins."""

from models.lm import probe  # noqa: F401
