"""Who may speak for a report after its case changed hands (spec section 10.1-10.2).

A report has one responsible member at a time. The member its author sent it
to is its *expected owner*; after that, responsibility passes only through
signed CASE_STATUS_MOVED updates, each made by the member responsible at the
time and naming the report. This module holds the pure rules over such a
chain, already verified update by update (signatures and decoding happen at
the edge, in federation.intake.payloads): whether the links follow on from each
other, and whether a chain proves that a given member now owns the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from federation.core.case_status import CaseStatus
from federation.core.ids import MemberId, ReportId
from federation.core.reasons import Rejection, RejectReason
from federation.core.roster import Roster
from federation.core.status_update import StatusUpdate

Chain = Sequence[StatusUpdate]


def check_links(chain: Chain, report_id: ReportId, roster: Roster) -> Rejection | None:
    """The chain's updates are MOVED updates of this report, and each one
    after the first is signed by the member responsible for the previous
    one's new hosting country."""
    for link in chain:
        if link.status is not CaseStatus.MOVED or report_id not in link.report_ids:
            return Rejection(RejectReason.MALFORMED_PAYLOAD, "moved_by does not move this report")
    for earlier, later in pairwise(chain):
        if heir_of(earlier, roster) != later.member_id:
            return Rejection(
                RejectReason.NOT_RESPONSIBLE,
                "a moved_by update is not signed by the member it was moved to",
            )
    return None


def heir_of(move: StatusUpdate, roster: Roster) -> MemberId:
    """The member a MOVED update hands its reports to."""
    return roster.responsible_for(move.new_hosting_country).member_id


def proves_owner(
    expected_owner: MemberId, chain: Chain, member_id: MemberId, roster: Roster
) -> bool:
    """True when ``member_id`` owns a report whose expected owner is
    ``expected_owner``: it is that member, or the (linked, see check_links)
    chain starts at it and ends with a hand-over to ``member_id``."""
    if not chain:
        return member_id == expected_owner
    return chain[0].member_id == expected_owner and heir_of(chain[-1], roster) == member_id
