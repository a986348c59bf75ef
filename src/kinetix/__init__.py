"""kinetix: every Kinetics release, fetched, verified, organised, processed and loaded."""

from kinetix.catalog.clip import Clip
from kinetix.errors import KinetixError

__version__ = "0.1.0"
__all__ = ["Clip", "KinetixError", "__version__"]
