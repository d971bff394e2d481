"""The case registry: every case has an id, the spec section it checks and one line.

Cases register themselves, in execution order, when the modules of
``conformance.cases`` are imported. Item cases (one delivered item, one
expected receipt) also carry their builder so that ``hfed conformance
vectors`` can write them out as reusable test vectors.
"""

from __future__ import annotations

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
}


def _register(entry: Case) -> None:
    if any(c.id == entry.id for c in REGISTRY):
        raise ValueError(f"duplicate case id {entry.id}")
    if entry.group not in GROUP_TITLES:
        raise ValueError(f"case {entry.id}: unknown group")
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
