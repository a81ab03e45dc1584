"""Task plugins; importing this package registers every task family."""

from tasks import activity, chromatin, enhancers, epi, peaks, targetfinder_features  # noqa: F401
