"""``hfed liaison``: the police liaison's client for referrals at a hotline node.

Every command reads the liaison's profile (see federation.cli.liaison.profile),
checks the client certificate before connecting, and calls the node's
LiaisonService over mutual TLS. Unary calls carry a deadline; ``watch`` has
none, but is bounded by --max-events / --idle-exit and by how long it keeps
trying to reconnect.

Messages are written for a police officer under time pressure: they say what
went wrong and what to do, and name the node, the case or the profile key.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import click
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from federation.cli.liaison.profile import (
    PROFILE_ENV,
    CertificateExpiredError,
    CursorFileError,
    CursorStore,
    LiaisonProfile,
    ProfileError,
    SavedCursor,
    load_profile,
)
from federation.cli.output import FORMAT_OPTION, Format, emit, printable
from federation.core.ids import is_uuid
from federation.runtime.clock import utc_now
from hfp.v1 import case_pb2, status_pb2
from hfp.v1 import liaison_service_pb2 as pb
from hfp.v1 import liaison_service_pb2_grpc as pb_grpc
from peers.backoff import Backoff
from peers.channel import DEFAULT_DEADLINE_SECONDS, secure_channel

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Deadline of every unary call (seconds).
DEADLINE = DEFAULT_DEADLINE_SECONDS
#: The most referrals the node returns per page (ListReferralsRequest).
MAX_PAGE = 500
#: Limits from liaison_service.proto, checked here too so that a typo is
#: caught before the call and explained in the officer's terms.
MAX_REFERENCE_CHARS = 128
MAX_REASON_CHARS = 500
MAX_HOLD = timedelta(days=90)

#: Where the group's --profile is kept for its commands (click context meta).
_PROFILE_META = "hfed.liaison.profile"
#: Exit statuses, so scripts can tell an outage from a refusal.
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_NOT_FOUND = 5

STATUSES = [n.removeprefix("CASE_STATUS_").lower() for n in status_pb2.CaseStatus.keys()[1:]]
LIST_COLUMNS = (
    "case_id",
    "status",
    "country",
    "reports",
    "first_reported",
    "acknowledged",
    "hold_until",
    "url",
)
EXPORT_COLUMNS = (
    "case_id",
    "status",
    "hosting_country",
    "canonical_url",
    "first_reported_at",
    "reports",
    "reporters",
    "police_acknowledged_at",
    "police_reference",
    "hold_until",
    "hold_reason",
    "history",
)
WHEN_FORMS = (
    "a date (2025-06-01), a date and time in UTC (2025-06-01T14:30) or a duration (14d, 48h)"
)


class LiaisonError(click.ClickException):
    """A failure explained for the officer (exit status 1)."""

    exit_code = EXIT_FAILED


class UnreachableError(LiaisonError):
    """The node could not be reached or did not answer in time."""

    exit_code = EXIT_UNREACHABLE


class RefusedError(LiaisonError):
    """The node refused the liaison: certificate, role or wrong node."""

    exit_code = EXIT_REFUSED


class NoSuchReferralError(LiaisonError):
    """The case does not exist or is outside the liaison's jurisdiction."""

    exit_code = EXIT_NOT_FOUND


# --- times and durations -------------------------------------------------------

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}


def parse_duration(text: str) -> timedelta | None:
    """'14d', '48h', '1d12h', '90m', '2w' → timedelta; None if not duration-shaped."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or not compact[0].isdigit():
        return None
    total, number = timedelta(), ""
    for char in compact:
        if char.isdigit():
            number += char
        elif char in _UNITS and number:
            total += int(number) * _UNITS[char]
            number = ""
        else:
            return None
    # A bare number ("14") is refused: days or hours is a guess we must not make.
    return None if number else total


def parse_when(text: str, now: datetime, *, ago: bool = False) -> datetime:
    """A moment from an ISO date/time (UTC unless it says otherwise) or a duration.

    A duration counts forward from ``now`` (``--until 14d``), or backward when
    ``ago`` (``--since 7d``). A date alone means 00:00 UTC that day.
    """
    duration = parse_duration(text)
    if duration is not None:
        return now - duration if ago else now + duration
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not {WHEN_FORMS}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _when_option(text: str, option: str, now: datetime, *, ago: bool) -> datetime:
    try:
        return parse_when(text, now, ago=ago)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def iso(moment: datetime) -> str:
    """UTC time as '2025-06-01T14:30:00Z' (one format for screens and files)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(message: Any, name: str) -> datetime | None:
    """A Timestamp field as an aware datetime, or None when unset."""
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    return value.ToDatetime(tzinfo=UTC)


def _stamp_text(message: Any, name: str) -> str:
    moment = _stamp(message, name)
    return "" if moment is None else iso(moment)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


# --- formatting ----------------------------------------------------------------


def status_name(value: int) -> str:
    """'ASSESSED_ILLEGAL' for CASE_STATUS_ASSESSED_ILLEGAL; tolerant of newer values."""
    try:
        return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]
    except ValueError:
        return f"STATUS_{value}"


def kind_name(value: int) -> str:
    """'CASE_OPENED' for CASE_EVENT_KIND_CASE_OPENED; tolerant of newer values."""
    try:
        return case_pb2.CaseEventKind.Name(value).removeprefix("CASE_EVENT_KIND_")  # type: ignore[arg-type]
    except ValueError:
        return f"KIND_{value}"


def first_reported(case: case_pb2.Case) -> datetime | None:
    """When the first report of the case was made (else when the case opened)."""
    moments = [_stamp(r.report, "created_at") or _stamp(r, "received_at") for r in case.reports]
    known = [m for m in moments if m is not None]
    return min(known) if known else _stamp(case, "created_at")


def active_hold(case: case_pb2.Case, now: datetime) -> datetime | None:
    """The end of the case's police hold, if one is in force at ``now``."""
    until = _stamp(case, "hold_until")
    return until if until is not None and until > now else None


def report_total(case: case_pb2.Case) -> int:
    """How many reports the case holds (a node before report_count sent them all)."""
    return max(case.report_count, len(case.reports))


def reporters_text(case: case_pb2.Case) -> str:
    """Authors of the reports listed with the case, ';'-separated; ';...' ends
    the list when the case holds more reports than it lists (see `reports`)."""
    names = sorted({r.origin_member_id for r in case.reports})
    return ";".join(names + (["..."] if report_total(case) > len(case.reports) else []))


def referral_row(case: case_pb2.Case, now: datetime) -> dict[str, Any]:
    """One line of ``list``."""
    first = first_reported(case)
    hold = active_hold(case, now)
    acknowledged = ""
    if case.HasField("police_acknowledged_at"):
        acknowledged = case.police_reference or "yes"
    return {
        "case_id": case.case_id,
        "status": status_name(case.status),
        "country": case.hosting_country,
        "reports": report_total(case),
        "first_reported": "" if first is None else iso(first),
        "acknowledged": acknowledged,
        "hold_until": "" if hold is None else iso(hold),
        "url": case.canonical_url,
    }


def export_row(case: case_pb2.Case) -> dict[str, Any]:
    """One row of ``export``: everything a case system needs, history compacted."""
    first = first_reported(case)
    history = ";".join(
        f"{status_name(u.status)}@{_stamp_text(u, 'observed_at')}" for u in case.history
    )
    return {
        "case_id": case.case_id,
        "status": status_name(case.status),
        "hosting_country": case.hosting_country,
        "canonical_url": case.canonical_url,
        "first_reported_at": "" if first is None else iso(first),
        "reports": report_total(case),
        "reporters": reporters_text(case),
        "police_acknowledged_at": _stamp_text(case, "police_acknowledged_at"),
        "police_reference": case.police_reference,
        "hold_until": _stamp_text(case, "hold_until"),
        "hold_reason": case.hold_reason,
        "history": history,
    }


def event_record(response: pb.WatchReferralsResponse) -> dict[str, Any]:
    """An event as a flat record (the JSON form of ``watch``)."""
    event = response.event
    return {
        "occurred_at": _stamp_text(event, "occurred_at"),
        "sequence": event.sequence,
        "kind": kind_name(event.kind),
        "case_id": event.case_id,
        "status": status_name(event.status),
        "hosting_country": event.case.hosting_country,
        "url": event.case.canonical_url,
        "cursor": response.cursor,
    }


def event_line(response: pb.WatchReferralsResponse) -> str:
    """An event as one line of text: time, kind, case id, status, url."""
    r = event_record(response)
    return printable(
        f"{r['occurred_at'] or '-':<20}  {r['kind']:<14}  {r['case_id']}  "
        f"{r['status']:<20}  {r['url']}"
    ).rstrip()


# --- profile, channel and errors -----------------------------------------------


_PROFILE_HELP = f"Your liaison profile, liaison.toml (or set {PROFILE_ENV})."


def profile_option(command: F) -> F:
    """Add --profile to a command (it may also be given before the command name)."""
    return click.option(
        "--profile",
        "profile_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE",
        help=_PROFILE_HELP,
    )(command)


def open_profile(path: Path | None) -> LiaisonProfile:
    """Load the profile and refuse an expired certificate before connecting.

    The profile comes from the command's --profile, else the group's
    (``hfed liaison --profile FILE list``), else HFED_LIAISON_PROFILE.
    """
    if path is None:
        context = click.get_current_context(silent=True)
        given = context.find_root().meta.get(_PROFILE_META) if context is not None else None
        path = given if isinstance(given, Path) else None
    try:
        profile = load_profile(path)
        profile.check_certificate(utc_now())
    except CertificateExpiredError as exc:
        raise RefusedError(str(exc)) from exc
    except ProfileError as exc:
        raise LiaisonError(str(exc)) from exc
    return profile


def explain(exc: grpc.RpcError, profile: LiaisonProfile, case_id: str = "") -> LiaisonError:
    """A failed call in words an officer can act on."""
    code: grpc.StatusCode = exc.code()
    details = exc.details() or "no details"
    node = profile.node_label
    if code is grpc.StatusCode.UNAVAILABLE:
        return UnreachableError(
            f"cannot reach the hotline node {node}: {details}. Check `node` in your profile "
            "and your network, then try again; if it persists, call the hotline."
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return UnreachableError(
            f"the hotline node {node} did not answer within {DEADLINE:.0f} s; try again shortly"
        )
    if code is grpc.StatusCode.NOT_FOUND and case_id:
        return NoSuchReferralError(f"no such referral in your jurisdiction: {case_id}")
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return RefusedError(f"the hotline node {node} refused: {details}")
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return RefusedError(
            f"the hotline node {node} did not accept your certificate as a liaison of this "
            f"network ({details}); ask the network operator"
        )
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return RefusedError(
            f"{node} does not offer the police liaison service; check `node` in your profile"
        )
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return LiaisonError(f"the hotline node {node} rejected the request: {details}")
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return LiaisonError(f"not possible now: {details}")
    return LiaisonError(f"the hotline node {node} answered {code.name}: {details}")


@contextmanager
def liaison_stub(profile: LiaisonProfile) -> Iterator[pb_grpc.LiaisonServiceStub]:
    """A LiaisonService stub on a fresh mutual-TLS channel to the profile's node."""
    try:
        identity = profile.identity()
    except ProfileError as exc:
        raise LiaisonError(str(exc)) from exc
    with secure_channel(profile.node, identity) as channel:
        yield pb_grpc.LiaisonServiceStub(channel)


def unary(
    profile: LiaisonProfile,
    call: Callable[[pb_grpc.LiaisonServiceStub], T],
    case_id: str = "",
) -> T:
    """Run one unary call (which must pass ``timeout=DEADLINE``), explaining failures."""
    with liaison_stub(profile) as stub:
        try:
            return call(stub)
        except grpc.RpcError as exc:
            raise explain(exc, profile, case_id) from exc


def case_argument(text: str) -> str:
    """A case id as the node spells it (canonical lower-case UUID)."""
    case_id = text.strip().lower()
    if not is_uuid(case_id):
        raise click.BadParameter(
            f"{text!r} is not a case id (case ids look like "
            "0190c6c2-7a3b-7c4d-8e5f-123456789abc; see `hfed liaison list`)",
            param_hint="CASE",
        )
    return case_id


# --- the command group ---------------------------------------------------------


@click.group()
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar=PROFILE_ENV,
    metavar="FILE",
    help=_PROFILE_HELP,
)
@click.pass_context
def liaison(context: click.Context, profile_path: Path | None) -> None:
    """Police liaison: see and act on referrals at your hotline's node.

    A referral is a reported case hosted in your country. Every command needs
    your profile file: add --profile FILE, or set HFED_LIAISON_PROFILE once.

    \b
      hfed liaison list                           your referrals, newest first
      hfed liaison watch                          follow new referrals live
      hfed liaison reports CASE                   every report of one referral
      hfed liaison ack CASE --reference REF       confirm you received one
      hfed liaison hold CASE --reason TEXT --until 14d
                                                  delay the takedown notice
      hfed liaison release CASE                   lift your hold
      hfed liaison export --since 7d -o out.csv   CSV for your case system

    \b
    Times are UTC. Exit status: 0 done, 1 failed or refused by the node,
    2 wrong usage, 3 node unreachable, 4 access refused (certificate, wrong
    node), 5 no such referral in your jurisdiction.
    """
    # Kept on the root context so that every command finds it, whichever
    # parent group (hfed, or this one run on its own) it is called through.
    context.find_root().meta[_PROFILE_META] = profile_path


@liaison.command("list")
@profile_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only referrals in this status (repeat for several).",
)
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Show at most this many referrals.",
)
@FORMAT_OPTION
def list_referrals(
    profile_path: Path | None, statuses: tuple[str, ...], limit: int, fmt: Format
) -> None:
    """List your referrals, newest first.

    Columns: case id, status, country, number of reports (all of them; see
    `reports CASE` for the list), first reported, acknowledged (your
    reference, or yes), active hold until, URL.
    """
    profile = open_profile(profile_path)
    filters = case_pb2.CaseFilter(
        statuses=[status_pb2.CaseStatus.Value(f"CASE_STATUS_{s.upper()}") for s in statuses]
    )
    cases: list[case_pb2.Case] = []

    def pages(stub: pb_grpc.LiaisonServiceStub) -> None:
        token = ""
        while len(cases) < limit:
            request = pb.ListReferralsRequest(
                filters=filters, page_size=min(limit - len(cases), MAX_PAGE), page_token=token
            )
            page = stub.ListReferrals(request, timeout=DEADLINE)
            cases.extend(page.cases[: limit - len(cases)])
            token = page.next_page_token
            if not token or not page.cases:
                break

    unary(profile, pages)
    now = utc_now()
    emit(fmt, LIST_COLUMNS, [referral_row(c, now) for c in cases])


REPORT_COLUMNS = ("report_id", "from", "received", "url")
#: Reports per ListCaseReports call (the most a page holds).
REPORT_PAGE = 100


@liaison.command()
@profile_option
@click.argument("case", metavar="CASE")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Show at most this many reports.",
)
@FORMAT_OPTION
def reports(profile_path: Path | None, case: str, limit: int, fmt: Format) -> None:
    """List the reports of referral CASE, in the order they joined it.

    A referral in `list` and `export` carries its first 100 reports and the
    total; this pages through all of them (up to --limit).
    Columns: report id, reporting hotline, received, URL as reported.
    """
    case_id = case_argument(case)
    profile = open_profile(profile_path)
    found: list[case_pb2.CaseReport] = []
    total = 0

    def pages(stub: pb_grpc.LiaisonServiceStub) -> None:
        nonlocal total
        token = ""
        while len(found) < limit:
            request = pb.LiaisonServiceListCaseReportsRequest(
                case_id=case_id, page_size=min(limit - len(found), REPORT_PAGE), page_token=token
            )
            page = stub.ListCaseReports(request, timeout=DEADLINE)
            found.extend(page.reports[: limit - len(found)])
            total, token = page.report_count, page.next_page_token
            if not token or not page.reports:
                break

    unary(profile, pages, case_id)
    rows = [
        {
            "report_id": r.report_id,
            "from": r.origin_member_id,
            "received": _stamp_text(r, "received_at"),
            "url": r.report.url,
        }
        for r in found
    ]
    emit(fmt, REPORT_COLUMNS, rows)
    more = f"; --limit {total} shows them all" if total > len(found) else ""
    click.echo(f"{len(found)} of {total} reports of case {case_id}{more}", err=True)


@liaison.command()
@profile_option
@click.argument("case", metavar="CASE")
@click.option(
    "--reference",
    required=True,
    help=f"Your own reference number for this case (at most {MAX_REFERENCE_CHARS} characters).",
)
def ack(profile_path: Path | None, case: str, reference: str) -> None:
    """Confirm you received referral CASE, with your reference number.

    The hotline sees the acknowledgement and your reference. Acknowledging
    again replaces the reference.
    """
    case_id = case_argument(case)
    reference = reference.strip()
    if not 0 < len(reference) <= MAX_REFERENCE_CHARS:
        raise click.BadParameter(
            f"must be 1 to {MAX_REFERENCE_CHARS} characters", param_hint="--reference"
        )
    profile = open_profile(profile_path)
    request = pb.AcknowledgeReferralRequest(case_id=case_id, reference=reference)
    reply = unary(profile, lambda s: s.AcknowledgeReferral(request, timeout=DEADLINE), case_id)
    done = reply.case
    at = _stamp_text(done, "police_acknowledged_at")
    click.echo(
        f"case {done.case_id}: acknowledged, your reference {done.police_reference or reference}"
        + (f" (since {at})" if at else "")
    )


@liaison.command()
@profile_option
@click.argument("case", metavar="CASE")
@click.option(
    "--reason",
    required=True,
    help=f"Why, for the hotline's analysts (1 to {MAX_REASON_CHARS} characters).",
)
@click.option(
    "--until",
    "until_text",
    required=True,
    metavar="WHEN",
    help=f"When the hold lifts by itself (at most 90 days): {WHEN_FORMS}.",
)
def hold(profile_path: Path | None, case: str, reason: str, until_text: str) -> None:
    """Ask the hotline to delay the takedown notice for CASE.

    Use this to protect an investigation. Until the hold ends the hotline
    cannot send the notice to the hosting provider. It ends at --until, or
    earlier with `hfed liaison release CASE`.
    """
    case_id = case_argument(case)
    reason = reason.strip()
    if not 0 < len(reason) <= MAX_REASON_CHARS:
        raise click.BadParameter(
            f"must be 1 to {MAX_REASON_CHARS} characters", param_hint="--reason"
        )
    now = utc_now()
    until = _when_option(until_text, "--until", now, ago=False)
    if until <= now:
        raise click.BadParameter(f"{iso(until)} is not in the future", param_hint="--until")
    if until - now > MAX_HOLD:
        raise click.BadParameter("a hold can last at most 90 days", param_hint="--until")
    profile = open_profile(profile_path)
    request = pb.RequestHoldRequest(case_id=case_id, reason=reason, until=_timestamp(until))
    reply = unary(profile, lambda s: s.RequestHold(request, timeout=DEADLINE), case_id)
    held = reply.case
    click.echo(
        f"case {held.case_id}: on hold until {_stamp_text(held, 'hold_until') or iso(until)} "
        f"(status {status_name(held.status)})"
    )
    click.echo(f"  reason: {printable(held.hold_reason or reason)}")


@liaison.command()
@profile_option
@click.argument("case", metavar="CASE")
def release(profile_path: Path | None, case: str) -> None:
    """Lift your hold on CASE now; the hotline may then send the takedown notice."""
    case_id = case_argument(case)
    profile = open_profile(profile_path)
    request = pb.ReleaseHoldRequest(case_id=case_id)
    reply = unary(profile, lambda s: s.ReleaseHold(request, timeout=DEADLINE), case_id)
    click.echo(
        f"case {reply.case.case_id}: hold released (status {status_name(reply.case.status)})"
    )


@liaison.command()
@profile_option
@click.option(
    "--since",
    "since_text",
    required=True,
    metavar="WHEN",
    help=f"Referrals opened at or after WHEN: {WHEN_FORMS} ago.",
)
@click.option(
    "--until",
    "until_text",
    default=None,
    metavar="WHEN",
    help="Only referrals opened before WHEN (same forms; default: now).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the CSV to FILE instead of the screen.",
)
def export(
    profile_path: Path | None, since_text: str, until_text: str | None, output: Path | None
) -> None:
    """Export referrals as CSV for your case system.

    \b
    Columns: case_id, status, hosting_country, canonical_url,
    first_reported_at, reports, reporters, police_acknowledged_at,
    police_reference, hold_until, hold_reason, history.
    history lists every status as STATUS@time, separated by ';' (past 100
    updates, the first 10 and the latest 90). reports is the total;
    reporters are those of the first 100 reports, ending ';...' when there
    are more (`hfed liaison reports CASE` lists every report).
    """
    now = utc_now()
    since = _when_option(since_text, "--since", now, ago=True)
    until = None if until_text is None else _when_option(until_text, "--until", now, ago=True)
    if until is not None and until <= since:
        raise click.BadParameter("must be later than --since", param_hint="--until")
    profile = open_profile(profile_path)
    filters = case_pb2.CaseFilter(created_since=_timestamp(since))
    if until is not None:
        filters.created_until.CopyFrom(_timestamp(until))
    rows: list[dict[str, Any]] = []
    progress = _Progress()

    def pages(stub: pb_grpc.LiaisonServiceStub) -> None:
        token = ""
        while True:
            request = pb.ListReferralsRequest(filters=filters, page_size=MAX_PAGE, page_token=token)
            page = stub.ListReferrals(request, timeout=DEADLINE)
            rows.extend(export_row(c) for c in page.cases)
            token = page.next_page_token
            if not token or not page.cases:
                break
            progress.show(f"exporting: {len(rows)} referrals so far...")

    unary(profile, pages)
    progress.done()
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    if output is None:
        click.echo(text.getvalue(), nl=False)
        click.echo(f"exported {len(rows)} referrals", err=True)
        return
    try:
        _write_atomically(output, text.getvalue())
    except OSError as exc:
        raise LiaisonError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"exported {len(rows)} referrals to {output}", err=True)


class _Progress:
    """A progress line on stderr: rewritten in place on a terminal, else one per step."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        self._shown = True
        if self._tty:
            click.echo(f"\r{text}", err=True, nl=False)
        else:
            click.echo(text, err=True)

    def done(self) -> None:
        if self._shown and self._tty:
            click.echo("", err=True)


def _write_atomically(path: Path, text: str) -> None:
    # A failed export must not leave a half file that a case system imports.
    target = path.resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --- watch ---------------------------------------------------------------------


class StreamCall(Protocol):
    """What ``watch`` needs of a server-streaming call: iterate it, cancel it."""

    def __iter__(self) -> Iterator[pb.WatchReferralsResponse]:
        """The responses as they arrive; raises grpc.RpcError when the call fails."""
        ...

    def cancel(self) -> bool:
        """End the call from any thread."""
        ...


class NodeUnreachableError(Exception):
    """No connection to the node could be made (a reason to retry)."""


#: Opens the stream after ``cursor``; returns None if told to stop while connecting.
Opener = Callable[[str, Callable[[], bool]], StreamCall | None]

#: Codes after which the stream is reopened from the saved cursor: the node
#: is restarting or overloaded, or the connection broke. Anything else (a
#: refused certificate, a rejected cursor) will not get better by retrying.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class WatchEnd(enum.Enum):
    """Why a watch ended normally."""

    MAX_EVENTS = "max-events"
    IDLE = "idle"
    INTERRUPTED = "interrupted"


class GaveUpError(Exception):
    """The node stayed unreachable for longer than the watch may wait."""


@dataclass
class WatchOptions:
    """Bounds of one watch."""

    max_events: int | None = None
    idle_exit: float | None = None
    reconnect_for: float = 120.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=0.5, cap_seconds=10.0))
    #: A stream that stayed open this long counts as a working connection,
    #: even if no event came, so a later drop starts a fresh outage clock.
    healthy_after: float = 10.0


class Follower:
    """Follows the event stream: print, save the cursor, reconnect, repeat.

    Each event is printed first and its cursor saved right after, so a
    restart resumes after the last printed event. (Printing before saving
    means a hard kill between the two repeats one event on the next run,
    whereas the other order could lose one; a repeat is the safer mistake.)
    Ctrl-C, --max-events and --idle-exit only take effect between events,
    never between the print and the save.
    """

    def __init__(
        self,
        opener: Opener,
        store: CursorStore,
        show: Callable[[pb.WatchReferralsResponse], None],
        notice: Callable[[str], None],
        options: WatchOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener
        self._store = store
        self._show = show
        self._notice = notice
        self._options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._call: StreamCall | None = None
        self._idle_deadline: float | None = None
        self._done = threading.Event()
        #: Set from a signal handler: a plain assignment, safe there.
        self.interrupted = False
        self.events = 0
        self.sequence: int | None = None
        #: True while the node is unreachable (between a failure and a reconnect).
        self.in_outage = False
        self._connected_once = False
        self._failures = 0
        self._outage_since: float | None = None
        self._opened_at: float | None = None

    def _stop_reason(self) -> WatchEnd | None:
        # Read by the main loop and the watchdog thread: plain attributes
        # only, so no lock is needed (and none is taken in a signal handler).
        if self.interrupted:
            return WatchEnd.INTERRUPTED
        deadline = self._idle_deadline
        if deadline is not None and self._clock() >= deadline:
            return WatchEnd.IDLE
        return None

    def _touch(self) -> None:
        if self._options.idle_exit is not None:
            self._idle_deadline = self._clock() + self._options.idle_exit

    def _attach(self, call: StreamCall | None) -> None:
        with self._lock:
            self._call = call

    def _watchdog(self) -> None:
        # The blocking iteration of a gRPC stream has no timeout, so a helper
        # thread ends it when the user interrupts or the idle time runs out.
        while not self._done.wait(0.1):
            if self._stop_reason() is not None:
                with self._lock:
                    if self._call is not None:
                        self._call.cancel()

    def run(self, cursor: str) -> WatchEnd:
        """Follow from ``cursor`` until a bound is reached; raises GaveUpError."""
        self._touch()
        thread = threading.Thread(target=self._watchdog, name="watch-watchdog", daemon=True)
        thread.start()
        try:
            return self._follow(cursor)
        finally:
            self._done.set()
            thread.join(timeout=2.0)

    def _follow(self, cursor: str) -> WatchEnd:
        while True:
            stop = self._stop_reason()
            if stop is not None:
                return stop
            started = self._clock()
            self._opened_at = None
            try:
                end, cursor, problem = self._session(cursor)
            finally:
                self._attach(None)
            if end is not None:
                return end
            self._recover(started, problem)

    def _session(self, cursor: str) -> tuple[WatchEnd | None, str, str]:
        """One connection: (why the watch ended or None, cursor, why the stream broke)."""
        try:
            call = self._opener(cursor, lambda: self._stop_reason() is not None)
            if call is None:  # told to stop while connecting
                return self._stop_reason() or WatchEnd.INTERRUPTED, cursor, ""
            self._connected_once = True
            self._opened_at = self._clock()
            if self.in_outage:
                self._notice("reconnected; resuming " + self.position())
                self.in_outage = False
            self._attach(call)
            for response in call:
                self._show(response)
                cursor = response.cursor
                self._store.save(cursor, response.event.sequence)
                self.events += 1
                self.sequence = response.event.sequence
                self._touch()
                self._failures, self._outage_since = 0, None
                end = self._stop_reason()
                if self._options.max_events and self.events >= self._options.max_events:
                    end = WatchEnd.MAX_EVENTS
                if end is not None:
                    call.cancel()
                    return end, cursor, ""
            return None, cursor, "the node closed the stream"
        except grpc.RpcError as exc:
            stop = self._stop_reason()
            if stop is not None:  # our own cancel
                return stop, cursor, ""
            code: grpc.StatusCode = exc.code()
            if code not in RETRYABLE:
                raise
            return None, cursor, f"{code.name}: {exc.details() or 'no details'}"
        except NodeUnreachableError as exc:
            return None, cursor, str(exc)

    def _recover(self, started: float, problem: str) -> None:
        """After a broken stream: give up, or say so and wait before the next attempt."""
        now = self._clock()
        opened = self._opened_at
        if opened is not None and now - opened >= self._options.healthy_after:
            self._failures, self._outage_since = 0, None
        self._failures += 1
        if self._outage_since is None:
            # After a working stream the outage begins now; if this attempt
            # never connected, it began when the attempt did.
            self._outage_since = now if opened is not None else started
        self.in_outage = True
        waited = now - self._outage_since
        if waited >= self._options.reconnect_for:
            raise GaveUpError(
                f"no connection for {waited:.0f} s after {self._failures} attempts "
                f"(last: {problem})"
            )
        delay = self._options.backoff.delay(self._failures).total_seconds()
        delay = min(delay, self._options.reconnect_for - waited)
        lost = self._failures == 1 and self._connected_once
        lead = "lost the node" if lost else "cannot reach the node"
        self._notice(f"{lead} ({problem}); reconnecting in {delay:.1f} s")
        self._pause(delay)  # the loop in _follow ends the watch if told to stop meanwhile

    def _pause(self, seconds: float) -> None:
        """Sleep, waking early when told to stop."""
        end = self._clock() + seconds
        while self._clock() < end and self._stop_reason() is None:
            time.sleep(min(0.1, max(end - self._clock(), 0.0)))

    def position(self) -> str:
        """Where the watch stands, in words."""
        return "from the start" if self.sequence is None else f"after event {self.sequence}"


class NodeStreams:
    """Opens WatchReferrals on a fresh channel each time.

    A fresh channel per attempt because a gRPC channel that failed backs off
    on its own schedule (up to minutes) and fails new calls at once meanwhile;
    a new channel connects immediately, so reconnects follow our backoff.
    """

    #: How long to wait for the TCP/TLS connection before counting a failure.
    CONNECT_TIMEOUT = 10.0

    def __init__(self, profile: LiaisonProfile) -> None:
        self._profile = profile
        self._channel: grpc.Channel | None = None

    def open(self, cursor: str, should_stop: Callable[[], bool]) -> StreamCall | None:
        """Connect, then start the stream after ``cursor``."""
        self.close()
        # A long watch can outlive its certificate; say so rather than
        # retrying a TLS handshake the node will never accept.
        self._profile.check_certificate(utc_now())
        channel = secure_channel(self._profile.node, self._profile.identity())
        self._channel = channel
        states: queue.SimpleQueue[grpc.ChannelConnectivity] = queue.SimpleQueue()
        channel.subscribe(states.put, try_to_connect=True)
        try:
            if not self._connected(states, should_stop):
                return None
        finally:
            channel.unsubscribe(states.put)
        stub = pb_grpc.LiaisonServiceStub(channel)
        call: StreamCall = stub.WatchReferrals(pb.WatchReferralsRequest(cursor=cursor))
        return call

    def _connected(
        self, states: queue.SimpleQueue[grpc.ChannelConnectivity], should_stop: Callable[[], bool]
    ) -> bool:
        """Wait for the connection: True when up, False when told to stop.

        A refused or failed connection ends the wait at once (rather than
        letting gRPC retry on its own schedule), so the watch's own backoff
        and give-up window decide how often and how long to try.
        """
        end = time.monotonic() + self.CONNECT_TIMEOUT
        while time.monotonic() < end:
            if should_stop():
                return False
            try:
                state = states.get(timeout=0.1)
            except queue.Empty:
                continue
            if state is grpc.ChannelConnectivity.READY:
                return True
            if state in (
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                grpc.ChannelConnectivity.SHUTDOWN,
            ):
                raise NodeUnreachableError(f"cannot connect to {self._profile.node_label}")
        raise NodeUnreachableError(
            f"no connection to {self._profile.node_label} within {self.CONNECT_TIMEOUT:.0f} s"
        )

    def close(self) -> None:
        """Close the current channel, if any."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None


#: Codes with which a node may refuse a saved cursor (malformed, or beyond
#: its event log after its data was reset).
_CURSOR_REFUSED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)

#: A second Ctrl-C this long after the first forces the exit. Sooner ones are
#: ignored: wrappers such as timeout(1) deliver one signal twice, and a forced
#: exit could fall between printing an event and saving its cursor.
FORCE_AFTER_SECONDS = 1.0


@contextmanager
def _stop_signals(follower: Follower) -> Iterator[None]:
    """Ctrl-C (and SIGTERM) ask the follower to stop between events."""
    first: list[float] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not first:
            first.append(time.monotonic())
            follower.interrupted = True
        elif signum == signal.SIGINT and time.monotonic() - first[0] > FORCE_AFTER_SECONDS:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


@liaison.command()
@profile_option
@click.option(
    "--from-start",
    is_flag=True,
    help="Show every event from the beginning, ignoring where you stopped last time "
    "(your place is then saved as usual).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per event; json: one JSON object per line, for programs.",
)
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Stop after N events.",
)
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop after SECONDS without any event.",
)
@click.option(
    "--reconnect-for",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="After losing the node, keep trying to reconnect this long before giving up.",
)
def watch(
    profile_path: Path | None,
    from_start: bool,
    fmt: str,
    max_events: int | None,
    idle_exit: float | None,
    reconnect_for: float,
) -> None:
    """Follow new referrals and every change to them, as they happen.

    \b
    Each event is one line: time (UTC), what happened, case id, status, URL.
    Stop with Ctrl-C. Your place is saved after every event, so the next
    `watch` continues exactly where this one stopped: nothing is skipped and
    nothing shown twice. If the node goes away, watch reconnects by itself.
    """
    profile = open_profile(profile_path)
    store = profile.cursor_store()
    streams = NodeStreams(profile)

    def show(response: pb.WatchReferralsResponse) -> None:
        if fmt == "json":
            click.echo(json.dumps(event_record(response)))
        else:
            click.echo(event_line(response))

    def notice(text: str) -> None:
        click.echo(f"watch: {text}", err=True)

    options = WatchOptions(max_events, idle_exit, reconnect_for)
    follower = Follower(streams.open, store, show, notice, options)
    saved: SavedCursor | None = None
    try:
        with store.exclusive(), _stop_signals(follower):
            saved = None if from_start else store.load()
            if saved is not None:
                follower.sequence = saved.sequence
            notice(
                f"watching referrals at {profile.node_label} as {profile.member_id}, "
                f"{follower.position()}; Ctrl-C to stop"
            )
            end = follower.run("" if saved is None else saved.cursor)
    except CursorFileError as exc:
        raise LiaisonError(str(exc)) from exc
    except CertificateExpiredError as exc:
        raise RefusedError(str(exc)) from exc
    except ProfileError as exc:
        raise LiaisonError(str(exc)) from exc
    except GaveUpError as exc:
        raise UnreachableError(
            f"gave up: cannot reach the hotline node {profile.node_label}: {exc}. "
            f"Your place is saved; run watch again to continue."
        ) from exc
    except grpc.RpcError as exc:
        if exc.code() in _CURSOR_REFUSED and saved is not None:
            raise LiaisonError(
                f"the node {profile.node_label} did not accept your saved place "
                f"({exc.details()}); if the node's data was reset, use --from-start"
            ) from exc
        raise explain(exc, profile) from exc
    finally:
        streams.close()
    if end is WatchEnd.IDLE and follower.in_outage:
        raise UnreachableError(
            f"no event for {idle_exit or 0:g} s and the node {profile.node_label} is still "
            "unreachable; your place is saved"
        )
    if end is WatchEnd.MAX_EVENTS:
        why = f"stopped after {follower.events} events"
    elif end is WatchEnd.IDLE:
        why = f"stopped: no event for {idle_exit or 0:g} s"
    else:
        why = "stopped"
    notice(f"{why}; your place is saved ({follower.position()})")
