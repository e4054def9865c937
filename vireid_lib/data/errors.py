"""The one error type every dataset reader raises for bad input on disk or bad arguments."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file, folder or parameter is missing or malformed.

    The message always names the offending file, folder or value and says what to do.
    """
