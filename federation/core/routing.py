"""Routing by jurisdiction: who must act on a report (protocol section 6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federation.core.ids import MemberId
from federation.core.limits import Limits
from federation.core.reasons import Rejection, RejectReason
from federation.core.roster import Roster


@dataclass(frozen=True, slots=True)
class HandleHere:
    """This node is responsible: create or join a case."""


@dataclass(frozen=True, slots=True)
class ForwardTo:
    """Another member is responsible: forward the unchanged envelope."""

    member_id: MemberId
    via_member_ids: tuple[MemberId, ...]


Route = HandleHere | ForwardTo | Rejection


def route_report(
    roster: Roster,
    self_id: MemberId,
    hosting_country: str,
    via: Sequence[MemberId],
    limits: Limits,
) -> Route:
    """Decide where a report goes from this node.

    Forwarding goes straight to the responsible member, appending this node
    to the path; a path that would grow past the limit is refused as a loop
    rather than sent on to be refused there.
    """
    responsible = roster.responsible_for(hosting_country)
    if responsible.member_id == self_id:
        return HandleHere()
    path = (*via, self_id)
    if len(path) > limits.max_via_entries or responsible.member_id in via:
        return Rejection(RejectReason.LOOP_DETECTED, "forwarding would exceed the path limit")
    return ForwardTo(responsible.member_id, path)
