"""Task plugins; importing this package registers every task family."""
from tasks import enhancers  # noqa: F401
from tasks import epi, targetfinder_features  # noqa: F401
