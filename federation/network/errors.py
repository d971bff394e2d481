"""The one error of operator files and ceremonies: its message is shown as is."""

from __future__ import annotations


class OperationsError(Exception):
    """A file or input an operator gave is unusable; the message says why, on one line."""
