"""Moved to ``kinetix.sources.youtube.errors``; this path still imports for existing callers."""

from kinetix.sources.youtube.errors import (
    MAX_MESSAGE,
    MESSAGE_RULES,
    Failure,
    classify,
    classify_message,
    clean_message,
)

__all__ = [
    "MAX_MESSAGE",
    "MESSAGE_RULES",
    "Failure",
    "classify",
    "classify_message",
    "clean_message",
]
