"""Model plugins; importing this package registers every model."""

from models import dnabert2_probe, eplae, epsat, kmer_attention, kmer_logreg, speid  # noqa: F401
from models import targetfinder_gbm  # noqa: F401
