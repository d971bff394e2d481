"""Wire forms of the operator's read side (GetOperations, ListAudit).

Here rather than in ``wire``: they convert the oversight package's records,
and ``wire`` sits below the application packages.
"""

from __future__ import annotations

from federation.oversight import AuditEntry, AuditLog, Lifetimes, PeerQueueState, RefusedItem
from federation.wire.times import set_optional_time, to_timestamp
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import receipt_pb2

_LOG_TO_WIRE = {
    AuditLog.BOTH: pb.AUDIT_LOG_UNSPECIFIED,
    AuditLog.LIAISON: pb.AUDIT_LOG_LIAISON,
    AuditLog.OPERATOR: pb.AUDIT_LOG_OPERATOR,
}
LOG_FROM_WIRE = {int(v): k for k, v in _LOG_TO_WIRE.items()}


def peer_queue_to_proto(state: PeerQueueState) -> pb.PeerQueue:
    """One peer's queue."""
    message = pb.PeerQueue(
        member_id=state.destination,
        pending=state.pending,
        delivered=state.delivered,
        rejected=state.rejected,
        failures=state.failures,
        last_error=state.last_error or "",
    )
    set_optional_time(message, "oldest_pending_at", state.oldest_pending)
    set_optional_time(message, "retry_at", state.retry_at)
    return message


def refused_to_proto(item: RefusedItem) -> pb.RefusedItem:
    """One refused item."""
    message = pb.RefusedItem(
        member_id=item.member_id,
        item_id=item.item_id,
        reject_reason=receipt_pb2.RejectReason.ValueType(int(item.reason) if item.reason else 0),
        detail=item.detail,
    )
    set_optional_time(message, "refused_at", item.refused_at)
    return message


def operations_to_proto(
    queues: list[PeerQueueState],
    refused: tuple[list[RefusedItem], bool],
    lifetimes: Lifetimes,
) -> pb.GetOperationsResponse:
    """The whole operations view."""
    items, truncated = refused
    reply = pb.GetOperationsResponse(
        peers=[peer_queue_to_proto(q) for q in queues],
        refused=[refused_to_proto(i) for i in items],
        refused_truncated=truncated,
        roster=pb.InstalledRosterState(
            version=lifetimes.roster_version,
            issued_at=to_timestamp(lifetimes.roster_issued_at),
            expires_at=to_timestamp(lifetimes.roster_expires_at),
            member_count=lifetimes.roster_members,
        ),
    )
    set_optional_time(reply, "certificate_not_after", lifetimes.certificate_not_after)
    return reply


def audit_entry_to_proto(entry: AuditEntry) -> pb.AuditEntry:
    """One audit entry."""
    return pb.AuditEntry(
        at=to_timestamp(entry.at),
        log=_LOG_TO_WIRE[entry.log],
        who=entry.who,
        rpc=entry.rpc,
        outcome=entry.outcome,
        calls=entry.calls,
        case_ids=list(entry.case_ids),
        detail=entry.detail,
    )
