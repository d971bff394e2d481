"""TEMPORARY stand-in (replaced by the real module)."""

from __future__ import annotations


class UrlError(ValueError):
    """Not canonicalisable."""


def canonical_url(url: str) -> str:
    """Stand-in."""
    return url
