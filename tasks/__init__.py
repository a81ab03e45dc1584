"""Task plugins; importing this package registers every task family."""

from tasks import chromatin, enhancers, epi, targetfinder_features  # noqa: F401
