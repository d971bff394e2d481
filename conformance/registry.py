"""The case registry: every case has an id, the spec section it checks and one line.

Cases register themselves, in execution order, when the modules of
``conformance.cases`` are imported. Item cases (one delivered item, one
expected receipt) also carry their builder so that ``hfed conformance
vectors`` can write them out as reusable test vectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from conformance.context import Context
    from conformance.items import ItemFactory, ItemSpec


class CaseFailedError(Exception):
    """A case found the node non-conformant; the message says how, in one line."""


class CaseSkippedError(Exception):
    """A case could not run on this network; the message says why."""


def fail(message: str) -> NoReturn:
    """Fail the running case with ``message``."""
    raise CaseFailedError(message)


Builder = Callable[["ItemFactory"], "ItemSpec"]


@dataclass(frozen=True)
class Case:
    """One conformance case."""

    id: str
    section: str
    description: str
    must_reject: bool
    run: Callable[[Context], None]
    #: For item cases: how to build the item (used for vectors).
    builder: Builder | None = None
    #: Item cases that only make sense for a fixed moment (clock boundaries)
    #: or need state from earlier cases are not written as vectors.
    vector: bool = False
    #: The item needs the extra keys of the harness member (KEY cases).
    needs_extra_keys: bool = False
    #: The module that defined the case (sets the execution order).
    module: str = ""

    @property
    def family(self) -> str:
        """The family of the case's group (envelopes, rosters, ..., §10)."""
        return GROUP_FAMILY[self.group]

    @property
    def group(self) -> str:
        """The id's prefix: ENV, RPT, ROS, ..."""
        return self.id.split("-", 1)[0]

    def title(self) -> str:
        """``ENV-001 §2 description``."""
        return f"{self.id} §{self.section} {self.description}"


REGISTRY: list[Case] = []

GROUP_TITLES: dict[str, str] = {
    "SVC": "services (health, reflection)",
    "TLS": "transport and authorization",
    "ROS": "rosters",
    "ENV": "signed envelopes",
    "ORD": "verification order",
    "RPT": "report content",
    "LIM": "limits",
    "CLK": "clock skew",
    "AUT": "author",
    "PTH": "forwarding path",
    "RTE": "routing",
    "RCP": "receipts",
    "BAT": "batches",
    "IDM": "idempotency",
    "DUP": "deduplication",
    "FWD": "forwarding (seen as a peer)",
    "STS": "status updates",
    "KEY": "key validity and rotation",
    "OWN": "§10.1 who may speak for a report",
    "MOV": "§10.2 MOVED chains and re-routing",
    "HLD": "§10.3 held updates",
    "BND": "§10.4 bounded messages",
    "NUM": "§10.5 numbers in range",
    "ISO": "§10.6 isolation",
    "RPL": "§10.7 replays and receipt details",
    "LIA": "liaison service",
}

#: The families the groups belong to (the issue's grouping of the case set).
FAMILIES: dict[str, str] = {
    "transport": "transport, authorization and services",
    "envelopes": "signed envelopes, content and receipts",
    "rosters": "rosters and keys",
    "routing": "routing and forwarding",
    "dedup": "deduplication and idempotency",
    "status": "status updates (§7)",
    "§10": "second-edition amendments",
    "liaison": "liaison service",
    "limits": "limits",
}

GROUP_FAMILY: dict[str, str] = {
    "SVC": "transport",
    "TLS": "transport",
    "ENV": "envelopes",
    "ORD": "envelopes",
    "RPT": "envelopes",
    "CLK": "envelopes",
    "AUT": "envelopes",
    "RCP": "envelopes",
    "ROS": "rosters",
    "KEY": "rosters",
    "RTE": "routing",
    "PTH": "routing",
    "FWD": "routing",
    "BAT": "dedup",
    "IDM": "dedup",
    "DUP": "dedup",
    "STS": "status",
    "OWN": "§10",
    "MOV": "§10",
    "HLD": "§10",
    "BND": "§10",
    "NUM": "§10",
    "ISO": "§10",
    "RPL": "§10",
    "LIA": "liaison",
    "LIM": "limits",
}

#: A section: "2", or a numbered rule of a section ("10.1").
SECTION = re.compile(r"\d{1,2}(\.\d{1,2})?")
#: The rule statement: one line, at most this long.
MAX_DESCRIPTION = 100


def _register(entry: Case) -> None:
    if any(c.id == entry.id for c in REGISTRY):
        raise ValueError(f"duplicate case id {entry.id}")
    if entry.group not in GROUP_TITLES or entry.group not in GROUP_FAMILY:
        raise ValueError(f"case {entry.id}: unknown group")
    if not SECTION.fullmatch(entry.section):
        raise ValueError(f"case {entry.id}: no spec section (e.g. '6' or '10.1')")
    text = entry.description
    if not text.strip() or "\n" in text or len(text) > MAX_DESCRIPTION:
        raise ValueError(f"case {entry.id}: the rule must be one line of 1..100 characters")
    REGISTRY.append(entry)


def case(
    case_id: str, section: str, description: str, *, reject: bool = False
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register a case that drives the node itself."""

    def register(run: Callable[[Context], None]) -> Callable[[Context], None]:
        _register(Case(case_id, section, description, reject, run, module=run.__module__))
        return run

    return register


def item_case(
    case_id: str,
    section: str,
    description: str,
    *,
    reject: bool,
    vector: bool = True,
    extra_keys: bool = False,
) -> Callable[[Builder], Builder]:
    """Register a case that delivers one built item and checks its receipt."""

    def register(build: Builder) -> Builder:
        def run(ctx: Context) -> None:
            if extra_keys:
                ctx.ensure_extra_keys()
            spec = build(ctx.factory)
            if spec.expect.must_reject != reject:
                fail(f"harness bug: {case_id} registered with reject={reject}")
            ctx.run_item(spec)

        _register(
            Case(
                case_id,
                section,
                description,
                reject,
                run,
                build,
                vector,
                extra_keys,
                build.__module__,
            )
        )
        return build

    return register
