"""Files that appear whole or not at all (``kinetix.durable.AtomicFile``, kept here for the
export writers that import it from this module)."""

from kinetix.durable import AtomicFile

__all__ = ["AtomicFile"]
