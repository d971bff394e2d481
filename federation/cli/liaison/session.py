"""How ``hfed liaison`` reaches the node: the profile, the channel, calls,
and failures explained in words a police officer can act on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import click
import grpc

from federation.cli.liaison.profile import (
    CertificateExpiredError,
    LiaisonProfile,
    ProfileError,
    load_profile,
)
from federation.core.ids import CaseId
from federation.runtime.clock import utc_now
from federation.runtime.tracing import trace_metadata
from hfp.v1 import case_pb2
from hfp.v1 import liaison_service_pb2 as pb
from hfp.v1 import liaison_service_pb2_grpc as pb_grpc
from peers.channel import DEFAULT_DEADLINE_SECONDS, client_options, secure_channel, with_metadata

T = TypeVar("T")

#: Deadline of every unary call (seconds).
DEADLINE = DEFAULT_DEADLINE_SECONDS
#: The most referrals the node returns per page (ListReferralsRequest).
MAX_PAGE = 500
#: Reports per ListCaseReports call (the most a page holds).
REPORT_PAGE = 100

#: Where the group's --profile is kept for its commands (click context meta).
PROFILE_META = "hfed.liaison.profile"
#: Exit statuses, so scripts can tell an outage from a refusal.
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_NOT_FOUND = 5


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


def open_profile(path: Path | None) -> LiaisonProfile:
    """Load the profile and refuse an expired certificate before connecting.

    The profile comes from the command's --profile, else the group's
    (``hfed liaison --profile FILE list``), else HFED_LIAISON_PROFILE.
    """
    if path is None:
        context = click.get_current_context(silent=True)
        given = context.find_root().meta.get(PROFILE_META) if context is not None else None
        path = given if isinstance(given, Path) else None
    try:
        profile = load_profile(path)
        profile.check_certificate(utc_now())
    except CertificateExpiredError as exc:
        raise RefusedError(str(exc)) from exc
    except ProfileError as exc:
        raise LiaisonError(str(exc)) from exc
    return profile


def explain(
    exc: grpc.RpcError, profile: LiaisonProfile, case_id: CaseId | Literal[""] = ""
) -> LiaisonError:
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
    """A LiaisonService stub on a fresh mutual-TLS channel to the profile's node
    (its calls join the trace of the TRACEPARENT environment variable, if set)."""
    try:
        identity = profile.identity()
    except ProfileError as exc:
        raise LiaisonError(str(exc)) from exc
    with secure_channel(profile.node, identity, client_options()) as channel:
        yield pb_grpc.LiaisonServiceStub(with_metadata(channel, trace_metadata(os.environ)))


def unary(
    profile: LiaisonProfile,
    call: Callable[[pb_grpc.LiaisonServiceStub], T],
    case_id: CaseId | Literal[""] = "",
) -> T:
    """Run one unary call (which must pass ``timeout=DEADLINE``), explaining failures."""
    with liaison_stub(profile) as stub:
        try:
            return call(stub)
        except grpc.RpcError as exc:
            raise explain(exc, profile, case_id) from exc


def referral_pages(
    stub: pb_grpc.LiaisonServiceStub, filters: case_pb2.CaseFilter, limit: int | None = None
) -> Iterator[tuple[Sequence[case_pb2.Case], bool]]:
    """ListReferrals page after page, up to ``limit`` referrals (None: all):
    each page's referrals, and whether another page follows."""
    token, seen = "", 0
    while limit is None or seen < limit:
        size = MAX_PAGE if limit is None else min(limit - seen, MAX_PAGE)
        request = pb.ListReferralsRequest(filters=filters, page_size=size, page_token=token)
        page = stub.ListReferrals(request, timeout=DEADLINE)
        cases = page.cases if limit is None else page.cases[: limit - seen]
        seen += len(cases)
        token = page.next_page_token
        more = bool(token and page.cases)
        yield cases, more
        if not more:
            return


def case_reports(
    stub: pb_grpc.LiaisonServiceStub, case_id: CaseId, limit: int
) -> tuple[list[case_pb2.CaseReport], int]:
    """Up to ``limit`` reports of a referral, in the order they joined, and
    how many it holds in all."""
    found: list[case_pb2.CaseReport] = []
    token, total = "", 0
    while len(found) < limit:
        request = pb.LiaisonServiceListCaseReportsRequest(
            case_id=case_id, page_size=min(limit - len(found), REPORT_PAGE), page_token=token
        )
        page = stub.ListCaseReports(request, timeout=DEADLINE)
        found.extend(page.reports[: limit - len(found)])
        total, token = page.report_count, page.next_page_token
        if not token or not page.reports:
            break
    return found, total
