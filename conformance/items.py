"""Building delivered items: reports, envelopes, forwarded items, expectations.

An ``ItemFactory`` knows who signs (the harness's member, plus one third
party whose key the test network publishes), who receives, and which
countries route where. The same builders make the live cases and the
reusable test vectors, so a vector is exactly what the harness sends.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from conformance.dsse import REPORT_TYPE, STATUS_UPDATE_TYPE, sign_envelope
from conformance.keys import Ed25519Key
from hfp.v1 import envelope_pb2, federation_service_pb2, receipt_pb2, report_pb2, status_pb2

ACCEPTED = receipt_pb2.OUTCOME_ACCEPTED
DUPLICATE = receipt_pb2.OUTCOME_DUPLICATE
FORWARDED = receipt_pb2.OUTCOME_FORWARDED
REJECTED = receipt_pb2.OUTCOME_REJECTED

#: Labels of the deterministic extra keys the harness gives its own member in
#: the newer roster it publishes (and the vector network gives ``vector-a``).
SECOND_KEY_LABEL = "conformance/second"
REVOKED_KEY_LABEL = "conformance/revoked"
RETIRED_KEY_LABEL = "conformance/retired"
RETIRED_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
RETIRED_NOT_AFTER = datetime(2021, 1, 1, tzinfo=UTC)


def outcome_name(value: int) -> str:
    """``ACCEPTED`` for OUTCOME_ACCEPTED, etc. (the number when unknown)."""
    try:
        return receipt_pb2.Outcome.Name(value).removeprefix("OUTCOME_")  # type: ignore[arg-type]
    except ValueError:
        return str(value)


def reason_name(value: int) -> str:
    """``BAD_SIGNATURE`` for REJECT_REASON_BAD_SIGNATURE, etc."""
    try:
        name = receipt_pb2.RejectReason.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return str(value)
    return name.removeprefix("REJECT_REASON_")


def uuid7(moment: datetime, random_bits: int) -> str:
    """A version-7 UUID (RFC 9562) from a time and 74 random bits."""
    millis = int(moment.timestamp() * 1000) & ((1 << 48) - 1)
    value = millis << 80 | 0x7 << 76
    value |= ((random_bits >> 62) & 0xFFF) << 64
    value |= 0b10 << 62 | (random_bits & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Party:
    """A member the harness can sign for."""

    member_id: str
    key: Ed25519Key


@dataclass(frozen=True)
class ExtraKeys:
    """The harness member's additional keys (installed by a newer roster)."""

    second: Ed25519Key = field(default_factory=lambda: Ed25519Key.from_label(SECOND_KEY_LABEL))
    revoked: Ed25519Key = field(default_factory=lambda: Ed25519Key.from_label(REVOKED_KEY_LABEL))
    retired: Ed25519Key = field(default_factory=lambda: Ed25519Key.from_label(RETIRED_KEY_LABEL))
    retired_not_before: datetime = RETIRED_NOT_BEFORE
    retired_not_after: datetime = RETIRED_NOT_AFTER


@dataclass(frozen=True)
class Expect:
    """What the receipt for an item must say."""

    outcome: int
    reason: int = 0
    forwarded_to: str = ""

    def describe(self) -> str:
        """``REJECTED/BAD_SIGNATURE``, ``FORWARDED to hotline-nl``, ``ACCEPTED``."""
        if self.outcome == REJECTED:
            return f"REJECTED/{reason_name(self.reason)}"
        if self.outcome == FORWARDED:
            return f"FORWARDED to {self.forwarded_to}"
        return outcome_name(self.outcome)

    @property
    def must_reject(self) -> bool:
        """True for an expected refusal."""
        return self.outcome == REJECTED


def rejected(reason: int) -> Expect:
    """Expect a refusal for ``reason``."""
    return Expect(REJECTED, reason)


@dataclass(frozen=True)
class ItemSpec:
    """An item to deliver and what its receipt must say."""

    item: federation_service_pb2.ForwardedItem
    expect: Expect
    #: The report_id/update_id inside (empty when there is none).
    item_id: str = ""
    #: The TLS identity that delivers it.
    sender: str = ""


@dataclass
class ItemFactory:
    """Builds signed items for one sender/receiver pair."""

    me: Party
    target: str
    target_country: str
    other: Party
    other_country: str
    fallback: str
    uncovered_country: str
    own_country: str
    path_members: tuple[str, ...]
    clock: Callable[[], datetime]
    url_prefix: str
    random_bits: Callable[[], int]
    extra: ExtraKeys = field(default_factory=ExtraKeys)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self) -> str:
        """A fresh report/update id."""
        return uuid7(self.clock(), self.random_bits())

    def url(self, tag: str) -> str:
        """A URL no other item of this run (or vector set) uses."""
        return f"{self.url_prefix}/{tag}/{next(self._counter)}"

    def report(
        self,
        tag: str,
        *,
        country: str | None = None,
        author: str | None = None,
        created_at: datetime | None = None,
        omit_created_at: bool = False,
        url: str | None = None,
        report_id: str | None = None,
        hashes: Sequence[tuple[int, bytes]] = (),
    ) -> report_pb2.Report:
        """A well-formed report unless the caller breaks it."""
        report = report_pb2.Report(
            report_id=self.new_id() if report_id is None else report_id,
            origin_member_id=self.me.member_id if author is None else author,
            url=self.url(tag) if url is None else url,
            media_type=report_pb2.MEDIA_TYPE_IMAGE,
            classification=report_pb2.CLASSIFICATION_BASELINE,
            hosting_country=self.target_country if country is None else country,
        )
        if not omit_created_at:
            report.created_at.FromDatetime(self.clock() if created_at is None else created_at)
        for algorithm, value in hashes:
            report.hashes.add(algorithm=algorithm, value=value)
        return report

    def sign(
        self,
        payload: bytes | report_pb2.Report | status_pb2.StatusUpdate,
        *,
        payload_type: str | None = None,
        party: Party | None = None,
        key: Ed25519Key | None = None,
        key_id: str | None = None,
        signer: str | None = None,
        signed_type: str | None = None,
    ) -> envelope_pb2.SignedEnvelope:
        """Sign as ``party`` (default: the harness's member); overrides make bad envelopes."""
        if payload_type is None:
            is_status = isinstance(payload, status_pb2.StatusUpdate)
            payload_type = STATUS_UPDATE_TYPE if is_status else REPORT_TYPE
        data = payload if isinstance(payload, bytes) else payload.SerializeToString()
        who = party or self.me
        return sign_envelope(
            key or who.key,
            who.member_id if signer is None else signer,
            payload_type,
            data,
            key_id=key_id,
            signed_type=signed_type,
        )

    def spec(
        self,
        envelope: envelope_pb2.SignedEnvelope,
        expect: Expect,
        *,
        via: Sequence[str] = (),
        item_id: str = "",
    ) -> ItemSpec:
        """Wrap an envelope as an item the harness's member delivers."""
        item = federation_service_pb2.ForwardedItem(envelope=envelope, via_member_ids=list(via))
        return ItemSpec(item, expect, item_id, self.me.member_id)

    def report_spec(
        self,
        report: report_pb2.Report,
        expect: Expect,
        *,
        via: Sequence[str] = (),
        **sign_options: object,
    ) -> ItemSpec:
        """Sign ``report`` (see ``sign``) and wrap it."""
        envelope = self.sign(report, **sign_options)  # type: ignore[arg-type]
        return self.spec(envelope, expect, via=via, item_id=report.report_id)

    # --- expectations that depend on the network ---------------------------

    def accepted_here(self) -> Expect:
        """A report the target is responsible for, seen for the first time."""
        return Expect(ACCEPTED)

    def routed(self, responsible: str) -> Expect:
        """ACCEPTED when the target is responsible, else FORWARDED to ``responsible``."""
        if responsible == self.target:
            return Expect(ACCEPTED)
        return Expect(FORWARDED, forwarded_to=responsible)

    def future(self, delta: timedelta) -> datetime:
        """``delta`` from now."""
        return self.clock() + delta
