"""The cases, registered by importing their modules, run in ``MODULE_ORDER``.

Order matters only for the network's state: services and transport first,
rosters that must be refused, then everything delivered, what reaches the
harness's endpoint, and finally the one roster that is installed and the
key cases that need it.
"""

from __future__ import annotations

from conformance.cases import (
    bounds,
    delivery,
    envelope,
    handover,
    held,
    owners,
    peer_side,
    replays,
    report,
    rosters,
    rotation,
    routing,
    services,
)
from conformance.registry import REGISTRY, Case

MODULE_ORDER = (
    services,
    rosters,
    envelope,
    report,
    routing,
    delivery,
    peer_side,
    owners,
    handover,
    held,
    replays,
    bounds,
    rotation,
)


def all_cases() -> list[Case]:
    """Every case, in execution order (module order, then definition order)."""
    rank = {module.__name__: index for index, module in enumerate(MODULE_ORDER)}
    indexed = sorted(enumerate(REGISTRY), key=lambda pair: (rank[pair[1].module], pair[0]))
    return [entry for _, entry in indexed]
