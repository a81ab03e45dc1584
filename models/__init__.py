"""Model plugins; importing this package registers every model."""

import harness  # noqa: F401  (first: it silences the pynvml notice that importing torch would print)
from models import (  # noqa: F401
    basenji,
    basset,
    deepsea,
    eplae,
    epsat,
    kmer_attention,
    kmer_logreg,
    lm,
    shortcuts,
    speid,
    targetfinder_gbm,
)
