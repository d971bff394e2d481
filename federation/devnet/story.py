"""``hfed devnet demo``: the whole life of one report on the local test network.

A report received by one hotline becomes a case at the hotline responsible
for the hosting country; a duplicate from a third hotline joins it; the
national police liaison sees the referral and acknowledges it; the
responsible hotline records the takedown; both reporters receive the signed
history; statistics show the takedown time. Synthetic data only: the URL is
on a .test host and is never fetched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from federation.devnet.manifest import Manifest
from federation.trust import signed_by_member
from federation.wire.convert import envelope_from_proto
from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from peers.channel import ClientIdentity, secure_channel

DEADLINE = 15.0
WAIT_SECONDS = 30.0
Say = Callable[[str], None]
TAKEDOWN = (
    (status_pb2.CASE_STATUS_ASSESSED_ILLEGAL, "analyst confirms the material is illegal"),
    (status_pb2.CASE_STATUS_LEA_NOTIFIED, "national police informed"),
    (status_pb2.CASE_STATUS_NOTICE_SENT, "notice-and-takedown sent to the hosting provider"),
    (status_pb2.CASE_STATUS_CONTENT_REMOVED, "provider removed the content"),
)


class StoryError(RuntimeError):
    """A step of the demo did not happen as the protocol promises."""


class Demo:
    """Client-side moves on a running test network."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.manifest = Manifest.load(self.directory)

    @contextmanager
    def channel(self, caller: str, node: str) -> Iterator[grpc.Channel]:
        """A mutual-TLS channel with ``caller``'s identity to ``node``."""
        me = self.manifest.members[caller]
        identity = ClientIdentity.from_files(
            self.directory / self.manifest.ca_cert,
            self.directory / me.tls_cert,
            self.directory / me.tls_key,
        )
        with secure_channel(self.manifest.members[node].endpoint, identity) as channel:
            yield channel

    def submit(self, hotline: str, url: str, country: str) -> str:
        """Submit a report at ``hotline``; returns its report id."""
        report = report_pb2.Report(
            url=url, hosting_country=country, media_type=report_pb2.MEDIA_TYPE_IMAGE
        )
        with self.channel(hotline, hotline) as ch:
            receipt = (
                hgrpc.HotlineServiceStub(ch)
                .SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE)
                .receipt
            )
        return receipt.item_id

    def case(self, hotline: str, report_id: str, history: int = 0) -> case_pb2.Case:
        """The case holding a report at ``hotline``, once it has ``history`` updates."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self.channel(hotline, hotline) as ch:
            stub = hgrpc.HotlineServiceStub(ch)
            while time.monotonic() < deadline:
                try:
                    case = stub.GetCase(
                        hpb.GetCaseRequest(report_id=report_id), timeout=DEADLINE
                    ).case
                    if len(case.history) >= history:
                        return case
                except grpc.RpcError as exc:
                    if exc.code() is not grpc.StatusCode.NOT_FOUND:
                        raise
                time.sleep(0.2)
        raise StoryError(f"{hotline} did not receive the case of report {report_id} in time")

    def verified(self, case: case_pb2.Case) -> bool:
        """True when every update of the history verifies against the roster."""
        roster = self.manifest.verified_roster(self.directory)
        return all(
            signed_by_member(envelope_from_proto(signed), roster)
            for signed in case.history_envelopes
        )


def _name(status: int) -> str:
    return status_pb2.CaseStatus.Name(status).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]


def run_story(directory: Path, say: Say) -> None:
    """Tell the story on a running network (see the module docstring)."""
    demo = Demo(directory)
    a, b, c, police, country = "hotline-dk", "hotline-nl", "hotline-de", "police-nl", "NL"
    url = f"https://images.hosting-{os.urandom(3).hex()}.test/gallery/1234.jpg"
    say(f"1. {a} receives a public report of {url} (hosted in {country}) and submits it.")
    first = demo.submit(a, url, country)
    case = demo.case(b, first)
    say(f"   -> forwarded to {b}, responsible for {country}: case {case.case_id} opened.")
    say(f"2. {c} reports the same location, spelled differently.")
    second = demo.submit(c, url.replace("https://images.", "HTTPS://Images.") + "#top", country)
    if demo.case(b, second).case_id != case.case_id:
        raise StoryError("the duplicate did not join the case")
    say(
        f"   -> recognised as a duplicate: it joins case {case.case_id} "
        f"(now {demo.case(b, second).report_count} reports)."
    )
    say(f"3. The national police liaison ({police}) sees the referral and acknowledges it.")
    with demo.channel(police, b) as ch:
        stub = lgrpc.LiaisonServiceStub(ch)
        listed = stub.ListReferrals(lpb.ListReferralsRequest(), timeout=DEADLINE)
        if case.case_id not in {r.case_id for r in listed.cases}:
            raise StoryError("the liaison does not see the referral")
        stub.AcknowledgeReferral(
            lpb.AcknowledgeReferralRequest(case_id=case.case_id, reference="NL-POL-2026-0042"),
            timeout=DEADLINE,
        )
    say("   -> acknowledged with reference NL-POL-2026-0042 (the call is in the audit log).")
    say(f"4. {b} works the case:")
    with demo.channel(b, b) as ch:
        stub_b = hgrpc.HotlineServiceStub(ch)
        for status, meaning in TAKEDOWN:
            stub_b.RecordStatus(
                hpb.RecordStatusRequest(case_id=case.case_id, status=status), timeout=DEADLINE
            )
            say(f"   {_name(status):<17} {meaning}")
    say("5. Both reporters receive the signed status history:")
    for reporter, report_id in ((a, first), (c, second)):
        seen = demo.case(reporter, report_id, history=1 + len(TAKEDOWN))
        chain = " -> ".join(_name(u.status) for u in seen.history)
        check = "signatures verified" if demo.verified(seen) else "SIGNATURES DO NOT VERIFY"
        say(f"   {reporter}: {chain} ({check})")
    with demo.channel(b, b) as ch:
        stats = hgrpc.HotlineServiceStub(ch).GetStats(hpb.GetStatsRequest(), timeout=DEADLINE)
    median = stats.takedown_median.ToTimedelta().total_seconds()
    say(
        f"6. {b}'s statistics: {stats.removed_count} case(s) removed, median time from first "
        f"report to removal {median:.1f} s, {stats.removed_within_72h_share:.0%} within 72 h."
    )
    say(f"Try: hfed case show --devnet {directory} --member {b} {case.case_id}")
