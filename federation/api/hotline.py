"""HotlineService: the node's own analysts submit and look up reports and cases."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import grpc
import structlog

from federation.api.auth import Callers
from federation.api.decoding import field_path, from_request
from federation.api.errors import bind_caller, translate_errors
from federation.api.heavy import HEAVY_READS_DEFAULT, HeavyReads
from federation.api.operator import analyst_of, audited
from federation.api.oversight import LOG_FROM_WIRE, audit_entry_to_proto, operations_to_proto
from federation.api.pages import bounded_cases
from federation.cases import AuthoredReports, CaseActions, CaseLookup, OperatorAudit, StatusChange
from federation.cases.authored import encode_token
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.case import CaseView
from federation.core.case_status import CaseStatus, may_follow
from federation.core.errors import (
    BATCH_TOO_MANY_ITEMS,
    FOREIGN_ORIGIN,
    INVALID_REPORT,
    INVALID_URL,
    NOT_OPERATOR,
    REQUIRED_FIELD,
    UNKNOWN_ENUM_VALUE,
    InvalidArgumentError,
    PermissionDeniedError,
)
from federation.core.ids import CaseId, MemberId, ReportId, new_uuid7
from federation.core.limits import Limits
from federation.core.report import Report, check_report
from federation.core.roster import Role
from federation.core.status_update import StatusUpdate
from federation.intake import DeliveryService
from federation.oversight import Oversight
from federation.runtime.clock import Clock, utc_now
from federation.wire.authored import (
    authored_filter_from_proto,
    authored_page_to_proto,
    reporter_stats_to_proto,
)
from federation.wire.convert import (
    case_filter_from_proto,
    case_report_to_proto,
    case_to_proto,
    decode_envelope,
    envelope_to_proto,
    report_from_proto,
    stats_to_proto,
    status_update_to_proto,
)
from federation.wire.errors import MalformedMessageError
from federation.wire.times import optional_datetime, to_timestamp
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import receipt_pb2, report_pb2, status_pb2

log = structlog.get_logger(__name__)


def _canonical(url: str, field: str) -> str:
    """The canonical form of the URL in ``field`` (INVALID_ARGUMENT if it has none)."""
    try:
        return canonical_url(url)
    except UrlError as exc:
        raise InvalidArgumentError(
            INVALID_URL, f"{field.replace('.', ': ')}: {exc}", field=field
        ) from exc


ANY_ROLE = frozenset(Role)
#: Defaults and caps of the operator's bounded reads (0 in a request means the default).
REFUSED_DEFAULT, REFUSED_MAX = 50, 1000
AUDIT_DEFAULT, AUDIT_MAX = 100, 1000


def _bounded(asked: int, default: int, cap: int) -> int:
    return min(asked or default, cap)


@dataclass(frozen=True, slots=True)
class HotlineDesk:
    """The application services HotlineService adapts: intake of our own
    reports, the read side of cases, analysts' actions on them, and the
    reporter's view of the reports we sent."""

    intake: DeliveryService
    lookup: CaseLookup
    actions: CaseActions
    authored: AuthoredReports
    audit: OperatorAudit
    oversight: Oversight


class HotlineServicer(pb_grpc.HotlineServiceServicer):
    """Serves the node's own member: intake and case look-up."""

    def __init__(
        self,
        desk: HotlineDesk,
        callers: Callers,
        limits: Limits,
        heavy_reads: HeavyReads | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._heavy = heavy_reads or HeavyReads(HEAVY_READS_DEFAULT)
        self._intake = desk.intake
        self._lookup = desk.lookup
        self._actions = desk.actions
        self._authored = desk.authored
        self._audit = desk.audit
        self._oversight = desk.oversight
        self._callers = callers
        self._limits = limits
        self._clock = clock

    @property
    def _me(self) -> MemberId:
        return self._intake.member_id

    def _own_member(self, context: grpc.ServicerContext) -> str:
        """Refuse any caller but our own member; the analyst it names ("" if none)."""
        member = self._callers.member(context, ANY_ROLE)
        bind_caller(member.member_id)
        if member.member_id != self._me:
            raise PermissionDeniedError(
                NOT_OPERATOR, "only this node's own member may use HotlineService"
            )
        return analyst_of(context)

    @translate_errors
    def SubmitReport(  # noqa: N802 (gRPC method name)
        self, request: pb.SubmitReportRequest, context: grpc.ServicerContext
    ) -> pb.SubmitReportResponse:
        """Complete, sign, deduplicate and route a report from our own intake."""
        analyst = self._own_member(context)
        with audited(self._audit, analyst, "SubmitReport") as entry:
            report = self._complete(request.report)
            signed = self._intake.submit_own(report)
            receipt = receipt_pb2.Receipt.FromString(decode_envelope(signed).payload)
            entry.case_id = receipt.case_id
            entry.detail = f"report {report.report_id}: {receipt_pb2.Outcome.Name(receipt.outcome)}"
        # Debug only: at intake rates a line per report costs more than the
        # report (one locked, flushed write), and the caller has the receipt.
        log.debug(
            "report submitted",
            report_id=report.report_id,
            outcome=receipt_pb2.Outcome.Name(receipt.outcome),
        )
        return pb.SubmitReportResponse(receipt=receipt)

    @translate_errors
    def SubmitReports(  # noqa: N802
        self, request: pb.SubmitReportsRequest, context: grpc.ServicerContext
    ) -> pb.SubmitReportsResponse:
        """SubmitReport for up to max_batch_items reports, stored together;
        a report it would refuse gets a refusal and the others go on."""
        analyst = self._own_member(context)
        count = len(request.reports)
        if not 0 < count <= self._limits.max_batch_items:
            raise InvalidArgumentError(
                BATCH_TOO_MANY_ITEMS if count else REQUIRED_FIELD,
                f"reports: give 1 to {self._limits.max_batch_items} reports, not {count}",
                field="reports",
            )
        with audited(self._audit, analyst, "SubmitReports") as entry:
            results: list[pb.SubmitReportsResult | None] = [None] * count
            taken: list[tuple[int, Report]] = []
            for i, message in enumerate(request.reports):
                try:
                    taken.append((i, self._complete(message)))
                except InvalidArgumentError as exc:
                    refusal = pb.ReportRefusal(
                        reason=exc.reason,
                        detail=exc.public_message,
                        field=exc.field.removeprefix("report.").removeprefix("report"),
                    )
                    results[i] = pb.SubmitReportsResult(refusal=refusal)
            signed = self._intake.submit_own_many([report for _, report in taken]) if taken else []
            for (i, _report), envelope in zip(taken, signed, strict=True):
                receipt = receipt_pb2.Receipt.FromString(decode_envelope(envelope).payload)
                results[i] = pb.SubmitReportsResult(receipt=receipt)
            entry.detail = f"{count} reports, {count - len(taken)} refused before signing"
        return pb.SubmitReportsResponse(results=[r for r in results if r is not None])

    def _complete(self, message: report_pb2.Report) -> Report:
        """Fill the fields the node owns, then validate like any delivered report."""
        now = self._clock()
        filled = report_pb2.Report()
        filled.CopyFrom(message)
        filled.report_id = filled.report_id or new_uuid7()
        if filled.origin_member_id and filled.origin_member_id != self._me:
            raise InvalidArgumentError(
                FOREIGN_ORIGIN,
                f"origin_member_id must be empty or {self._me}",
                field="report.origin_member_id",
            )
        filled.origin_member_id = self._me
        if not filled.HasField("created_at"):
            filled.created_at.CopyFrom(to_timestamp(now))
        try:
            report = report_from_proto(filled)
        except MalformedMessageError as exc:
            path = field_path("report", exc.field)
            raise InvalidArgumentError(exc.reason, f"report: {exc}", field=path) from exc
        problem = check_report(report, now, self._limits)
        if problem is not None:
            raise InvalidArgumentError(INVALID_REPORT, f"report: {problem.detail}", field="report")
        _canonical(report.url, "report.url")
        return report

    @translate_errors
    def GetCase(  # noqa: N802
        self, request: pb.GetCaseRequest, context: grpc.ServicerContext
    ) -> pb.GetCaseResponse:
        """One case by case id or report id."""
        analyst = self._own_member(context)
        with audited(self._audit, analyst, "GetCase", request.case_id) as entry:
            answer = self._get_case(request)
            entry.case_id = answer.case.case_id
            return answer

    def _get_case(self, request: pb.GetCaseRequest) -> pb.GetCaseResponse:
        which = request.WhichOneof("selector")
        if which is None:
            raise InvalidArgumentError(REQUIRED_FIELD, "give case_id or report_id", field="case_id")
        if which == "report_id":
            view = self._lookup.case(report_id=ReportId(request.report_id))
        else:
            view = self._lookup.case(case_id=CaseId(request.case_id))
        return pb.GetCaseResponse(case=case_to_proto(view), next_statuses=self._next(view))

    def _next(self, view: CaseView) -> list[status_pb2.CaseStatus.ValueType]:
        """What the table lets follow the case's status (only for our own cases)."""
        if view.responsible_member_id != self._me:
            return []
        return [
            status_pb2.CaseStatus.ValueType(s) for s in CaseStatus if may_follow(view.status, s)
        ]

    @translate_errors
    def ListCases(  # noqa: N802
        self, request: pb.ListCasesRequest, context: grpc.ServicerContext
    ) -> pb.ListCasesResponse:
        """A filtered page of cases, newest first."""
        analyst = self._own_member(context)
        with audited(self._audit, analyst, "ListCases") as entry:
            answer = self._list_cases(request, context)
            entry.detail = f"{len(answer.cases)} cases"
            return answer

    def _list_cases(
        self, request: pb.ListCasesRequest, context: grpc.ServicerContext
    ) -> pb.ListCasesResponse:
        where = from_request(lambda: case_filter_from_proto(request.filters), "filters")
        if request.filters.url:
            where = dataclasses.replace(
                where, canonical_url=_canonical(request.filters.url, "filters.url")
            )
        with self._heavy.slot(context):
            page = self._lookup.cases(where, request.page_size, request.page_token)
            cases, next_token = bounded_cases(page)
            return pb.ListCasesResponse(cases=cases, next_page_token=next_token)

    @translate_errors
    def ListCaseReports(  # noqa: N802
        self, request: pb.ListCaseReportsRequest, context: grpc.ServicerContext
    ) -> pb.ListCaseReportsResponse:
        """A page of a case's reports in the order they joined (ours, for another member's case)."""
        self._own_member(context)
        page = self._lookup.reports(CaseId(request.case_id), request.page_size, request.page_token)
        return pb.ListCaseReportsResponse(
            reports=[case_report_to_proto(r) for r in page.reports],
            next_page_token=page.next_page_token,
            report_count=page.report_count,
        )

    @translate_errors
    def ListCaseHistory(  # noqa: N802
        self, request: pb.ListCaseHistoryRequest, context: grpc.ServicerContext
    ) -> pb.ListCaseHistoryResponse:
        """A page of a case's applied status updates, in sequence order."""
        self._own_member(context)
        page = self._lookup.history(CaseId(request.case_id), request.page_size, request.page_token)
        return pb.ListCaseHistoryResponse(
            history=[status_update_to_proto(u) for u in page.history],
            history_envelopes=[envelope_to_proto(e) for e in page.envelopes],
            next_page_token=page.next_page_token,
            history_count=page.history_count,
        )

    @translate_errors
    def RecordStatus(  # noqa: N802
        self, request: pb.RecordStatusRequest, context: grpc.ServicerContext
    ) -> pb.RecordStatusResponse:
        """Record a new status of one of our cases; it is signed and sent to every reporter."""
        analyst = self._own_member(context)
        with audited(self._audit, analyst, "RecordStatus", request.case_id) as entry:
            update = self._record(request)
            entry.detail = f"{update.status.name} (update {update.sequence})"
            return pb.RecordStatusResponse(update=status_update_to_proto(update))

    def _record(self, request: pb.RecordStatusRequest) -> StatusUpdate:
        try:
            status = CaseStatus(request.status)
        except ValueError:
            raise InvalidArgumentError(
                UNKNOWN_ENUM_VALUE, "status is missing or unknown", field="status"
            ) from None
        update = self._actions.record_status(
            StatusChange(CaseId(request.case_id), status, request.note, request.new_hosting_country)
        )
        log.info(
            "status recorded", case_id=update.case_id, status=status.name, sequence=update.sequence
        )
        return update

    @translate_errors
    def GetStats(  # noqa: N802
        self, request: pb.GetStatsRequest, context: grpc.ServicerContext
    ) -> pb.GetStatsResponse:
        """Counts and takedown times of the cases this node is responsible for,
        and of the reports it sent (the reporter's side)."""
        self._own_member(context)
        since = from_request(lambda: optional_datetime(request, "since"))
        until = from_request(lambda: optional_datetime(request, "until"))
        reply = stats_to_proto(self._lookup.stats(since, until))
        reply.reporter.CopyFrom(reporter_stats_to_proto(self._authored.stats(since, until)))
        return reply

    @translate_errors
    def ListAuthoredReports(  # noqa: N802
        self, request: pb.ListAuthoredReportsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuthoredReportsResponse:
        """A filtered page of the reports this node authored, with totals."""
        self._own_member(context)
        where = from_request(lambda: authored_filter_from_proto(request.filters), "filters")
        with self._heavy.slot(context):
            page = self._authored.page(where, request.page_size, request.page_token)
            token = encode_token(page.next_key) if page.next_key else ""
            return authored_page_to_proto(page, token)

    @translate_errors
    def GetOperations(  # noqa: N802
        self, request: pb.GetOperationsRequest, context: grpc.ServicerContext
    ) -> pb.GetOperationsResponse:
        """Peers' queues, refused items, roster and certificate lifetimes."""
        self._own_member(context)
        limit = _bounded(request.refused_limit, REFUSED_DEFAULT, REFUSED_MAX)
        with self._heavy.slot(context):
            return operations_to_proto(
                self._oversight.queues(),
                self._oversight.refused(limit),
                self._oversight.lifetimes(),
            )

    @translate_errors
    def ListAudit(  # noqa: N802
        self, request: pb.ListAuditRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditResponse:
        """Both audits merged, newest first, bounded."""
        analyst = self._own_member(context)
        which = LOG_FROM_WIRE.get(int(request.log))
        if which is None:
            raise InvalidArgumentError(
                UNKNOWN_ENUM_VALUE, f"log: unknown value {request.log}", field="log"
            )
        since = from_request(lambda: optional_datetime(request, "since"))
        limit = _bounded(request.limit, AUDIT_DEFAULT, AUDIT_MAX)
        with audited(self._audit, analyst, "ListAudit") as entry:
            with self._heavy.slot(context):
                entries, truncated = self._oversight.audit(which, since, request.who, limit)
            entry.detail = f"{len(entries)} entries"
        return pb.ListAuditResponse(
            entries=[audit_entry_to_proto(e) for e in entries], truncated=truncated
        )
