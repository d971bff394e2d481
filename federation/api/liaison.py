"""LiaisonService: police see and act on referrals; every call is audited."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import structlog

from federation.api.auth import Callers
from federation.api.decoding import from_request
from federation.api.errors import bind_caller, code_name, refusal_of, translate_errors
from federation.api.heavy import HEAVY_READS_DEFAULT, HeavyReads
from federation.api.pages import bounded_cases
from federation.core.errors import SHUTTING_DOWN, HfedError, UnavailableError
from federation.core.ids import CaseId, MemberId
from federation.core.roster import Member, Role
from federation.liaison import (
    MAX_AUDITED_CASES,
    Bell,
    CallAudit,
    ReferralDesk,
    ReferralEvent,
    decode_cursor,
)
from federation.runtime.tracing import DISABLED, Attributes, Tracing
from federation.wire.convert import (
    case_filter_from_proto,
    case_report_to_proto,
    case_to_proto,
    envelope_to_proto,
    status_update_to_proto,
)
from federation.wire.times import optional_datetime, to_timestamp
from hfp.v1 import case_pb2
from hfp.v1 import liaison_service_pb2 as pb
from hfp.v1 import liaison_service_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

LIAISON = frozenset({Role.LIAISON})
EVENT_PAGE = 200
IDLE_WAIT_SECONDS = 1.0

F = TypeVar("F", bound=Callable[..., Any])


def _case_ids(request: object, response: object) -> list[CaseId]:
    # The ids are read off the wire messages here, for the audit only: a
    # response's come from our own case views, a request's as it was asked.
    if hasattr(response, "cases"):
        return cast(list[CaseId], [c.case_id for c in response.cases])
    case = getattr(response, "case", None)
    if case is not None and case.case_id:
        return [CaseId(case.case_id)]
    # A page of one case's reports or history names the case in its request.
    asked = getattr(request, "case_id", "")
    return [CaseId(asked)] if asked else []


def audited(method: F) -> F:
    """Write every call, allowed or refused, to the append-only audit log."""

    @functools.wraps(method)
    def wrapper(self: LiaisonServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            response = method(self, request, context)
        except Exception as exc:
            refusal = refusal_of(exc)
            self.audit(
                context,
                method.__name__,
                [CaseId(getattr(request, "case_id", ""))],
                code_name(refusal),
                refusal.public_message,
            )
            raise
        self.audit(context, method.__name__, _case_ids(request, response), "OK", "")
        return response

    return wrapper  # type: ignore[return-value]


class _Sent:
    """What one stream has sent, for its audit entry: the number of events and
    the distinct case ids, at most as many as an audit entry lists, so that a
    stream open for months keeps a bounded record however much it sends."""

    def __init__(self) -> None:
        self.events = 0
        self.cases: dict[CaseId, None] = {}  # insertion-ordered set
        self.more = False

    def add(self, case_id: CaseId) -> None:
        self.events += 1
        if case_id in self.cases:
            return
        if len(self.cases) < MAX_AUDITED_CASES:
            self.cases[case_id] = None
        else:
            self.more = True

    def summary(self) -> str:
        more = f"; first {MAX_AUDITED_CASES} of more cases listed" if self.more else ""
        return f"{self.events} events sent{more}"


@dataclass(frozen=True, slots=True)
class EventFeed:
    """What wakes and ends WatchReferrals streams: the bell rung after every
    commit, and the node's shutdown."""

    bell: Bell
    stopping: threading.Event


class LiaisonServicer(pb_grpc.LiaisonServiceServicer):
    """Serves police liaisons of the countries this node is responsible for."""

    def __init__(
        self,
        desk: ReferralDesk,
        callers: Callers,
        audit: CallAudit,
        feed: EventFeed,
        heavy_reads: HeavyReads | None = None,
        tracing: Tracing = DISABLED,
    ) -> None:
        self._heavy = heavy_reads or HeavyReads(HEAVY_READS_DEFAULT)
        self._tracing = tracing
        self._desk = desk
        self._callers = callers
        self._audit = audit
        self._bell = feed.bell
        self._stopping = feed.stopping

    def audit(
        self,
        context: grpc.ServicerContext,
        rpc: str,
        case_ids: list[CaseId],
        outcome: str,
        detail: str,
        *,
        cause: str = "",
    ) -> None:
        """Append one audit entry for the calling liaison.

        A refused call is queued and written with others (RefusalAudit): a
        flood of refusals then costs one transaction a second, not one each.
        ``cause`` groups refusals whose detail varies (a retry delay).
        """
        try:
            who: str = self._callers.member_id(context)
        except HfedError:
            who = "(unauthenticated)"
        self._audit.record(who, rpc, case_ids, outcome, detail, cause=cause)

    def _liaison(self, context: grpc.ServicerContext) -> tuple[Member, frozenset[str]]:
        member = self._callers.member(context, LIAISON)
        bind_caller(member.member_id)
        return member, self._desk.admit(member)

    @translate_errors
    @audited
    def ListReferrals(  # noqa: N802 (gRPC method name)
        self, request: pb.ListReferralsRequest, context: grpc.ServicerContext
    ) -> pb.ListReferralsResponse:
        """Referrals in the caller's jurisdictions, newest first."""
        _, countries = self._liaison(context)
        where = from_request(lambda: case_filter_from_proto(request.filters), "filters")
        with self._heavy.slot(context):
            page = self._desk.referrals(countries, where, request.page_size, request.page_token)
            cases, next_token = bounded_cases(page)
            return pb.ListReferralsResponse(cases=cases, next_page_token=next_token)

    @translate_errors
    @audited
    def ListCaseReports(  # noqa: N802
        self, request: pb.LiaisonServiceListCaseReportsRequest, context: grpc.ServicerContext
    ) -> pb.LiaisonServiceListCaseReportsResponse:
        """A page of a referral's reports, in the order they joined."""
        _, countries = self._liaison(context)
        page = self._desk.reports(
            countries, CaseId(request.case_id), request.page_size, request.page_token
        )
        return pb.LiaisonServiceListCaseReportsResponse(
            reports=[case_report_to_proto(r) for r in page.reports],
            next_page_token=page.next_page_token,
            report_count=page.report_count,
        )

    @translate_errors
    @audited
    def ListCaseHistory(  # noqa: N802
        self, request: pb.LiaisonServiceListCaseHistoryRequest, context: grpc.ServicerContext
    ) -> pb.LiaisonServiceListCaseHistoryResponse:
        """A page of a referral's applied status updates, in sequence order."""
        _, countries = self._liaison(context)
        page = self._desk.history(
            countries, CaseId(request.case_id), request.page_size, request.page_token
        )
        return pb.LiaisonServiceListCaseHistoryResponse(
            history=[status_update_to_proto(u) for u in page.history],
            history_envelopes=[envelope_to_proto(e) for e in page.envelopes],
            next_page_token=page.next_page_token,
            history_count=page.history_count,
        )

    @translate_errors
    @audited
    def AcknowledgeReferral(  # noqa: N802
        self, request: pb.AcknowledgeReferralRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeReferralResponse:
        """Police confirm a referral with their reference number."""
        _, countries = self._liaison(context)
        view = self._desk.acknowledge(countries, CaseId(request.case_id), request.reference)
        return pb.AcknowledgeReferralResponse(case=case_to_proto(view))

    @translate_errors
    @audited
    def RequestHold(  # noqa: N802
        self, request: pb.RequestHoldRequest, context: grpc.ServicerContext
    ) -> pb.RequestHoldResponse:
        """Police ask to delay the takedown notice."""
        _, countries = self._liaison(context)
        until = from_request(lambda: optional_datetime(request, "until"))
        view = self._desk.request_hold(countries, CaseId(request.case_id), request.reason, until)
        return pb.RequestHoldResponse(case=case_to_proto(view))

    @translate_errors
    @audited
    def ReleaseHold(  # noqa: N802
        self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseHoldResponse:
        """Police lift their hold."""
        _, countries = self._liaison(context)
        view = self._desk.release_hold(countries, CaseId(request.case_id))
        return pb.ReleaseHoldResponse(case=case_to_proto(view))

    @translate_errors
    def WatchReferrals(  # noqa: N802
        self, request: pb.WatchReferralsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchReferralsResponse]:
        """Stream events after the cursor, in commit order, until the caller leaves."""
        sent = _Sent()
        outcome, detail = "OK", f"from cursor {request.cursor or '(start)'}"
        try:
            member, countries = self._liaison(context)
            after = decode_cursor(request.cursor)
            self._desk.check_cursor(after)
            yield from self._stream(context, (member.member_id, countries), after, sent)
        except Exception as exc:
            # Audited as the caller will see it; translate_errors ends the call.
            refusal = refusal_of(exc)
            outcome, detail = code_name(refusal), refusal.public_message
            raise
        finally:
            self.audit(
                context,
                "WatchReferrals",
                list(sent.cases),
                outcome,
                f"{detail}; {sent.summary()}",
            )

    def _stream(
        self,
        context: grpc.ServicerContext,
        watcher: tuple[MemberId, frozenset[str]],
        after: int,
        sent: _Sent,
    ) -> Iterator[pb.WatchReferralsResponse]:
        """The events of the liaison's (``watcher``'s) countries, each in a span
        continuing the trace of the call that logged it (tracing on)."""
        liaison, countries = watcher
        # Memory per stream stays bounded however slowly the client reads: the
        # generator is resumed only after gRPC has handed the previous message
        # to the transport (flow control), so at most one page is held here.
        while context.is_active():
            if self._stopping.is_set():
                raise UnavailableError(
                    SHUTTING_DOWN, "the node is shutting down: reconnect with your cursor"
                )
            seen = self._bell.rings
            events = self._desk.events(countries, after, EVENT_PAGE)
            for event in events:
                with self._tracing.span(
                    "liaison.event", _event_attributes(event, liaison), parent=event.traceparent
                ):
                    response = _event_response(event)
                yield response
                after = event.sequence
                sent.add(event.case_id)
            # A short page means the stream has caught up: wait for the next
            # commit rather than read an empty page first. The bell count was
            # taken before the read, so a commit during it is not missed.
            if len(events) < EVENT_PAGE:
                self._bell.wait(seen, IDLE_WAIT_SECONDS)


def _event_response(event: ReferralEvent) -> pb.WatchReferralsResponse:
    """One event of the stream, with the cursor after it."""
    return pb.WatchReferralsResponse(
        event=case_pb2.CaseEvent(
            sequence=event.sequence,
            kind=int(event.kind),  # type: ignore[arg-type]
            case_id=event.case_id,
            status=int(event.status),  # type: ignore[arg-type]
            occurred_at=to_timestamp(event.occurred_at),
            case=case_to_proto(event.case),
            report=case_report_to_proto(event.report) if event.report else None,
        ),
        cursor=event.cursor,
    )


def _event_attributes(event: ReferralEvent, liaison: MemberId) -> Attributes:
    """Ids, the event's position and kind: nothing of the case's content."""
    return {
        "hfed.liaison": liaison,
        "hfed.case_id": event.case_id,
        "hfed.event_sequence": event.sequence,
        "hfed.event_kind": event.kind.name,
        **({"hfed.report_id": event.report.report_id} if event.report else {}),
    }
