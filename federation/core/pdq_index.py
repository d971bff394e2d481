"""TEMPORARY stand-in (replaced by the real module)."""

from __future__ import annotations

from collections.abc import Iterable


class PdqIndex:
    """Stand-in."""

    def __init__(self, threshold: int = 31) -> None:
        self.threshold = threshold
        self._items: list[tuple[str, bytes]] = []

    def add(self, key: str, pdq: bytes) -> None:
        """Stand-in."""
        self._items.append((key, pdq))

    def add_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Stand-in."""
        self._items.extend(items)

    def search(self, pdq: bytes, threshold: int | None = None) -> list[tuple[str, int]]:
        """Stand-in."""
        return []

    def remove_entry(self, key: str, pdq: bytes) -> None:
        """Stand-in."""
        self._items.remove((key, pdq))
