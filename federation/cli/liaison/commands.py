"""``hfed liaison``: the police liaison's client for referrals at a hotline node.

Every command reads the liaison's profile (see federation.cli.liaison.profile),
checks the client certificate before connecting, and calls the node's
LiaisonService over mutual TLS. Unary calls carry a deadline; ``watch`` has
none, but is bounded by --max-events / --idle-exit and by how long it keeps
trying to reconnect.

Messages are written for a police officer under time pressure: they say what
went wrong and what to do, and name the node, the case or the profile key.

This module holds the click commands and their options; reaching the node
is ``session``'s, following the stream ``follower``'s, and what is shown
``formatting``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from federation.cli.csv_safe import EXCEL_OPTION, excel_requested
from federation.cli.liaison.follower import (
    Follower,
    GaveUpError,
    NodeStreams,
    WatchEnd,
    WatchOptions,
    stop_signals,
)
from federation.cli.liaison.formatting import (
    LIST_COLUMNS,
    REPORT_COLUMNS,
    Progress,
    csv_text,
    event_line,
    event_record,
    export_row,
    referral_row,
    report_row,
    stamp_text,
    status_name,
    timestamp,
    write_atomically,
)
from federation.cli.liaison.profile import (
    PROFILE_ENV,
    CertificateExpiredError,
    CursorFileError,
    CursorStore,
    LiaisonProfile,
    ProfileError,
    SavedCursor,
)
from federation.cli.liaison.session import (
    DEADLINE,
    PROFILE_META,
    LiaisonError,
    RefusedError,
    UnreachableError,
    case_reports,
    explain,
    open_profile,
    referral_pages,
    unary,
)
from federation.cli.output import FORMAT_OPTION, Format, emit, note_truncated, printable
from federation.cli.times import WHEN_FORMS, iso, parse_when
from federation.core.ids import CaseId, is_uuid
from federation.runtime.clock import utc_now
from hfp.v1 import case_pb2, status_pb2
from hfp.v1 import liaison_service_pb2 as pb
from hfp.v1 import liaison_service_pb2_grpc as pb_grpc

F = TypeVar("F", bound=Callable[..., Any])

#: Limits from liaison_service.proto, checked here too so that a typo is
#: caught before the call and explained in the officer's terms.
MAX_REFERENCE_CHARS = 128
MAX_REASON_CHARS = 500
MAX_HOLD = timedelta(days=90)

STATUSES = [n.removeprefix("CASE_STATUS_").lower() for n in status_pb2.CaseStatus.keys()[1:]]

#: Codes with which a node may refuse a saved cursor (malformed, or beyond
#: its event log after its data was reset).
_CURSOR_REFUSED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)


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


def _when_option(text: str, option: str, now: datetime, *, ago: bool) -> datetime:
    """The moment an option names, or a usage error that names the option."""
    try:
        return parse_when(text, now, ago=ago)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def case_argument(text: str) -> CaseId:
    """A case id as the node spells it (canonical lower-case UUID)."""
    case_id = text.strip().lower()
    if not is_uuid(case_id):
        raise click.BadParameter(
            f"{text!r} is not a case id (case ids look like "
            "0190c6c2-7a3b-7c4d-8e5f-123456789abc; see `hfed liaison list`)",
            param_hint="CASE",
        )
    return CaseId(case_id)


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
    context.find_root().meta[PROFILE_META] = profile_path


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

    def fetch(stub: pb_grpc.LiaisonServiceStub) -> tuple[list[case_pb2.Case], bool]:
        pages = list(referral_pages(stub, filters, limit))
        return [case for page, _ in pages for case in page], bool(pages and pages[-1][1])

    cases, more = unary(profile, fetch)
    now = utc_now()
    emit(fmt, LIST_COLUMNS, [referral_row(c, now) for c in cases])
    if more:
        note_truncated(len(cases), "referrals", "--status")


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
    found, total = unary(profile, lambda stub: case_reports(stub, case_id, limit), case_id)
    emit(fmt, REPORT_COLUMNS, [report_row(r) for r in found])
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
    at = stamp_text(done, "police_acknowledged_at")
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
    request = pb.RequestHoldRequest(case_id=case_id, reason=reason, until=timestamp(until))
    reply = unary(profile, lambda s: s.RequestHold(request, timeout=DEADLINE), case_id)
    held = reply.case
    click.echo(
        f"case {held.case_id}: on hold until {stamp_text(held, 'hold_until') or iso(until)} "
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
@EXCEL_OPTION
def export(
    profile_path: Path | None, since_text: str, until_text: str | None, output: Path | None
) -> None:
    """Export referrals as CSV for your case system.

    \b
    Columns: case_id, status, hosting_country, canonical_url,
    first_reported_at, reports, reporters, police_acknowledged_at,
    police_reference, hold_until, hold_reason, history, hashes,
    linked_cases, reappearance_of.
    history lists every status as STATUS@time, separated by ';' (past 100
    updates, the first 10 and the latest 90). reports is the total;
    reporters are those of the first 100 reports, ending ';...' when there
    are more (`hfed liaison reports CASE` lists every report). hashes are
    those of the listed reports (ALGORITHM:HEX;...); linked_cases are the
    cases with the same known content.

    \b
    Cells that a spreadsheet would run as a formula (starting with = + - @,
    a tab or CR) start with ' instead; control characters are removed.
    --excel adds a UTF-8 byte order mark so that Excel reads the accents.
    """
    filters = _export_window(since_text, until_text)
    profile = open_profile(profile_path)
    rows = unary(profile, lambda stub: _export_rows(stub, filters))
    _write_export(csv_text(rows, excel=excel_requested()), len(rows), output)


def _export_window(since_text: str, until_text: str | None) -> case_pb2.CaseFilter:
    """The referrals --since and --until select (both count back from now)."""
    now = utc_now()
    since = _when_option(since_text, "--since", now, ago=True)
    until = None if until_text is None else _when_option(until_text, "--until", now, ago=True)
    if until is not None and until <= since:
        raise click.BadParameter("must be later than --since", param_hint="--until")
    filters = case_pb2.CaseFilter(created_since=timestamp(since))
    if until is not None:
        filters.created_until.CopyFrom(timestamp(until))
    return filters


def _export_rows(
    stub: pb_grpc.LiaisonServiceStub, filters: case_pb2.CaseFilter
) -> list[dict[str, Any]]:
    """Every selected referral as an export row, with progress on stderr."""
    rows: list[dict[str, Any]] = []
    progress = Progress()
    for page, more in referral_pages(stub, filters):
        rows.extend(export_row(c) for c in page)
        if more:
            progress.show(f"exporting: {len(rows)} referrals so far...")
    progress.done()
    return rows


def _write_export(text: str, count: int, output: Path | None) -> None:
    """The CSV to the screen, or whole to ``output``."""
    if output is None:
        click.echo(text, nl=False)
        click.echo(f"exported {count} referrals", err=True)
        return
    try:
        write_atomically(output, text)
    except OSError as exc:
        raise LiaisonError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"exported {count} referrals to {output}", err=True)


# --- watch ---------------------------------------------------------------------


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
    options = WatchOptions(max_events, idle_exit, reconnect_for)
    follower = Follower(streams.open, store, _printer(fmt), _notice, options)
    try:
        end = _follow(profile, follower, store, from_start)
    finally:
        streams.close()
    _finish_watch(end, follower, profile, idle_exit)


def _printer(fmt: str) -> Callable[[pb.WatchReferralsResponse], None]:
    """How each event is shown: a line of text, or one JSON object per line."""

    def show(response: pb.WatchReferralsResponse) -> None:
        if fmt == "json":
            click.echo(json.dumps(event_record(response)))
        else:
            click.echo(event_line(response))

    return show


def _notice(text: str) -> None:
    """A message of the watch itself, on stderr (stdout carries only events)."""
    click.echo(f"watch: {text}", err=True)


def _follow(
    profile: LiaisonProfile, follower: Follower, store: CursorStore, from_start: bool
) -> WatchEnd:
    """Follow from the saved place (or the start) until a bound is reached."""
    saved: SavedCursor | None = None
    try:
        with store.exclusive(), stop_signals(follower):
            saved = None if from_start else store.load()
            if saved is not None:
                follower.sequence = saved.sequence
            _notice(
                f"watching referrals at {profile.node_label} as {profile.member_id}, "
                f"{follower.position()}; Ctrl-C to stop"
            )
            return follower.run("" if saved is None else saved.cursor)
    except (CursorFileError, ProfileError, GaveUpError, grpc.RpcError) as exc:
        raise _watch_failure(exc, profile, resumed=saved is not None) from exc


def _watch_failure(exc: Exception, profile: LiaisonProfile, *, resumed: bool) -> LiaisonError:
    """Why the watch failed, in words the officer can act on."""
    if isinstance(exc, CertificateExpiredError):
        return RefusedError(str(exc))
    if isinstance(exc, GaveUpError):
        return UnreachableError(
            f"gave up: cannot reach the hotline node {profile.node_label}: {exc}. "
            f"Your place is saved; run watch again to continue."
        )
    if isinstance(exc, grpc.RpcError):
        if exc.code() in _CURSOR_REFUSED and resumed:
            return LiaisonError(
                f"the node {profile.node_label} did not accept your saved place "
                f"({exc.details()}); if the node's data was reset, use --from-start"
            )
        return explain(exc, profile)
    return LiaisonError(str(exc))  # the cursor file or the profile


def _finish_watch(
    end: WatchEnd, follower: Follower, profile: LiaisonProfile, idle_exit: float | None
) -> None:
    """Say why the watch stopped (an idle exit during an outage is a failure)."""
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
    _notice(f"{why}; your place is saved ({follower.position()})")
