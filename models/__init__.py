"""Model plugins; importing this package registers every model."""

from models import (  # noqa: F401
    basset,
    deepsea,
    dnabert2_probe,
    eplae,
    epsat,
    kmer_attention,
    kmer_logreg,
    speid,
    targetfinder_gbm,
)
