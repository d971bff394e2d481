"""Why a row of a report, or a whole import, cannot go on (no imports: the
``report`` commands load it at start-up, the importer only when it runs)."""

from __future__ import annotations


class RowError(ValueError):
    """A report field that cannot be used; the message names it."""


class ImportStoppedError(Exception):
    """The import cannot go on (node unreachable); what was done is kept."""
