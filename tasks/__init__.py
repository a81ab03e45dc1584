"""Task plugins; importing this package registers every task family."""
from tasks import enhancers  # noqa: F401
