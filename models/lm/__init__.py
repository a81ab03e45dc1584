"""DNA language models (DNABERT-2, Nucleotide Transformer): loading, embeddings, the probe and fine-tune plugins."""

from models.lm import finetune, probe  # noqa: F401
