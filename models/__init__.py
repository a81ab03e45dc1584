"""Model plugins; importing this package registers every model."""

from models import kmer_attention, kmer_logreg  # noqa: F401
