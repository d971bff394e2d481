"""Protobuf <-> domain conversion: the one module that knows both worlds.

Decoders are given bytes that have already been authenticated (or, for the
envelope itself, only copy opaque fields) and raise ``MalformedMessageError``
with a public-safe message for anything that does not fit the domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from crypto.dsse import Envelope
from crypto.threshold import RootSignature
from federation.core.case import CaseFilter, CaseReportView, CaseView
from federation.core.case_status import CaseStatus
from federation.core.errors import INVALID_ROSTER, UNKNOWN_ENUM_VALUE
from federation.core.ids import CaseId, ItemId, KeyId, MemberId, ReportId, UpdateId
from federation.core.reasons import REPORT_TYPE, Outcome, RejectReason
from federation.core.receipt import Receipt
from federation.core.report import MAX_HASH_BYTES, ContentHash, HashAlgorithm, Report
from federation.core.roster import Member, MemberKey, Role, Roster, RosterError
from federation.core.stats import TakedownStats
from federation.core.status_update import StatusUpdate
from federation.wire.errors import EmbeddedMediaError, MalformedMessageError
from federation.wire.times import (
    optional_datetime,
    required_datetime,
    set_optional_time,
    to_timestamp,
)
from hfp.v1 import (
    case_pb2,
    envelope_pb2,
    federation_service_pb2,
    hotline_service_pb2,
    receipt_pb2,
    report_pb2,
    roster_pb2,
    status_pb2,
)

# Wire type 2 (length-delimited) in an unknown field could smuggle a blob;
# a group (wire type 3) holds further unknown fields that could.
_LENGTH_DELIMITED = 2
_START_GROUP = 3


def _parse(message: Message, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise MalformedMessageError(f"{what} does not decode") from exc


#: Slack for the fast path of _refuse_blobs: how much shorter than its
#: re-encoding a message's known fields can be on the wire. Only a repeated
#: scalar field sent unpacked with one element re-encodes longer (packed: one
#: byte more); Report and StatusUpdate have no repeated scalar fields, so 16
#: is ample.
_REENCODING_SLACK = 16
#: Total bytes of fields unknown to this version a payload may carry.
MAX_UNKNOWN_BYTES = 1024


def _refuse_blobs(message: Message, size: int) -> None:
    """Refuse unknown length-delimited fields larger than any hash, anywhere.

    Unknown fields hide at every level, not only the top one: inside known
    sub-messages (a hash entry, a timestamp) and inside unknown groups. The
    node stores and forwards the payload as signed, so a blob at any depth
    would travel on just like one at the top. The same holds for the value
    of a field sent twice, which the parser drops but the payload keeps.

    ``size`` is the length of the bytes ``message`` was parsed from. Fast
    path: the known fields alone re-encode to at least ``size`` minus the
    unknown fields' bytes (minus _REENCODING_SLACK), so when that leaves no
    room for a field longer than any hash, no unknown field can be one, and
    the walk over every sub-message (the costly part) is skipped.
    """
    # Bytes the parse dropped: a field sent twice keeps only its last value,
    # at any depth, yet the payload travels on as signed, with the first one
    # in it. A canonical encoder drops nothing; overlong varints drop a few.
    if size - message.ByteSize() > MAX_HASH_BYTES:
        raise EmbeddedMediaError("payload carries bytes that no field keeps")
    bare = type(message)()
    bare.CopyFrom(message)
    bare.DiscardUnknownFields()
    unknown = size - bare.ByteSize()
    if unknown > MAX_UNKNOWN_BYTES:
        # Many small fields could smuggle media past the per-field rule.
        raise EmbeddedMediaError(f"unknown fields carry more than {MAX_UNKNOWN_BYTES} bytes")
    if unknown + _REENCODING_SLACK <= MAX_HASH_BYTES:
        return
    _walk_for_blobs(message)


def _walk_for_blobs(message: Message) -> None:
    _refuse_unknown_blobs(UnknownFieldSet(message))
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for sub in value if field.is_repeated else (value,):
            _walk_for_blobs(sub)


def _refuse_unknown_blobs(fields: UnknownFieldSet) -> None:
    for index in range(len(fields)):
        item = fields[index]
        if item.wire_type == _LENGTH_DELIMITED and len(item.data) > MAX_HASH_BYTES:
            raise EmbeddedMediaError("unknown field carries a blob larger than any hash")
        if item.wire_type == _START_GROUP:
            # Nesting is bounded by the parser's recursion limit (100 levels).
            _refuse_unknown_blobs(item.data)


def _enum(enum_type: type[HashAlgorithm] | type[Role], value: int, field: str) -> object:
    try:
        return enum_type(value)
    except ValueError:
        raise MalformedMessageError(
            f"{field} has an unknown value", field=field, reason=UNKNOWN_ENUM_VALUE
        ) from None


# --- envelopes -----------------------------------------------------------------


def envelope_from_proto(message: envelope_pb2.SignedEnvelope) -> Envelope:
    """Copy the opaque fields of a wire envelope; nothing is parsed here."""
    return Envelope(
        payload=message.payload,
        payload_type=message.payload_type,
        signer_member_id=message.signer_member_id,
        key_id=message.key_id,
        signature=message.signature,
    )


def envelope_to_proto(envelope: Envelope) -> envelope_pb2.SignedEnvelope:
    """The wire form of an envelope."""
    return envelope_pb2.SignedEnvelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signer_member_id=envelope.signer_member_id,
        key_id=envelope.key_id,
        signature=envelope.signature,
    )


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialized wire envelope."""
    return envelope_to_proto(envelope).SerializeToString()


def decode_envelope(data: bytes) -> Envelope:
    """Parse a serialized envelope (e.g. one read back from storage)."""
    message = envelope_pb2.SignedEnvelope()
    _parse(message, data, "envelope")
    return envelope_from_proto(message)


def encode_proofs(moved_by: Iterable[bytes] = (), joined_receipts: Iterable[bytes] = ()) -> bytes:
    """The hand-over proof fields of a ForwardedItem, from serialized
    SignedEnvelopes, as the bytes of a ForwardedItem holding only them.

    This is how proofs are stored (outbox, case reports) and sent (merged
    into the outgoing item). Protobuf appends repeated fields on merge, so
    two such encodings put one after the other are one longer chain: a MOVED
    chain grows by one update by appending ``encode_proofs([move])``.
    """
    message = federation_service_pb2.ForwardedItem()
    for envelope in moved_by:
        message.moved_by.add().MergeFromString(envelope)
    for receipt in joined_receipts:
        message.joined_receipts.add().MergeFromString(receipt)
    return message.SerializeToString()


# --- reports -------------------------------------------------------------------


# A dict lookup: calling the enum class per hash costs more than the rest.
_HASH_ALGORITHMS = {member.value: member for member in HashAlgorithm}


def _hashes_from_proto(items: Iterable[report_pb2.ContentHash]) -> tuple[ContentHash, ...]:
    hashes = []
    for index, item in enumerate(items):
        if len(item.value) > MAX_HASH_BYTES:
            raise EmbeddedMediaError(
                f"hashes[{index}] is too long for a hash", field=f"hashes[{index}]"
            )
        algorithm = _HASH_ALGORITHMS.get(item.algorithm)
        if algorithm is None:
            raise MalformedMessageError(
                f"hashes[{index}].algorithm has an unknown value",
                field=f"hashes[{index}].algorithm",
                reason=UNKNOWN_ENUM_VALUE,
            )
        hashes.append(ContentHash(algorithm, item.value))
    return tuple(hashes)


_REPORT_ENUMS = (
    ("media_type", frozenset(report_pb2.MediaType.values())),
    ("classification", frozenset(report_pb2.Classification.values())),
    ("victim_age_group", frozenset(report_pb2.VictimAgeGroup.values())),
)


def report_from_proto(message: report_pb2.Report) -> Report:
    """Domain report from its wire form (timestamps must be set, enums known)."""
    for field, known in _REPORT_ENUMS:
        if getattr(message, field) not in known:
            raise MalformedMessageError(
                f"{field} has an unknown value", field=field, reason=UNKNOWN_ENUM_VALUE
            )
    return Report(
        report_id=ReportId(message.report_id),
        origin_member_id=MemberId(message.origin_member_id),
        created_at=required_datetime(message, "created_at"),
        url=message.url,
        hashes=_hashes_from_proto(message.hashes),
        media_type=message.media_type,
        classification=message.classification,
        hosting_country=message.hosting_country,
        hosting_ip=message.hosting_ip,
        hosting_asn=message.hosting_asn,
        site_type=message.site_type,
        victim_age_group=message.victim_age_group,
        analyst_note=message.analyst_note,
    )


def decode_report(payload: bytes) -> Report:
    """Parse an authenticated Report payload."""
    message = report_pb2.Report()
    _parse(message, payload, "report")
    _refuse_blobs(message, len(payload))
    return report_from_proto(message)


def report_to_proto(report: Report) -> report_pb2.Report:
    """The wire form of a report."""
    return report_pb2.Report(
        report_id=report.report_id,
        origin_member_id=report.origin_member_id,
        created_at=to_timestamp(report.created_at),
        url=report.url,
        hashes=[
            report_pb2.ContentHash(algorithm=h.algorithm.value, value=h.value)  # type: ignore[arg-type]
            for h in report.hashes
        ],
        media_type=report.media_type,  # type: ignore[arg-type]
        classification=report.classification,  # type: ignore[arg-type]
        hosting_country=report.hosting_country,
        hosting_ip=report.hosting_ip,
        hosting_asn=report.hosting_asn,
        site_type=report.site_type,
        victim_age_group=report.victim_age_group,  # type: ignore[arg-type]
        analyst_note=report.analyst_note,
    )


def encode_report(report: Report) -> bytes:
    """Serialized report payload, ready to sign."""
    return report_to_proto(report).SerializeToString()


# --- receipts ------------------------------------------------------------------


def receipt_to_proto(receipt: Receipt) -> receipt_pb2.Receipt:
    """The wire form of a receipt."""
    return receipt_pb2.Receipt(
        item_id=receipt.item_id,
        payload_type=receipt.payload_type,
        outcome=receipt.outcome.value,  # type: ignore[arg-type]
        case_id=receipt.case_id,
        forwarded_to=receipt.forwarded_to,
        reject_reason=receipt.reject_reason.value if receipt.reject_reason else 0,  # type: ignore[arg-type]
        detail=receipt.detail,
        received_at=to_timestamp(receipt.received_at),
        receiver_member_id=receipt.receiver_member_id,
        payload_sha256=receipt.payload_sha256,
    )


def encode_receipt(receipt: Receipt) -> bytes:
    """Serialized receipt payload, ready to sign."""
    return receipt_to_proto(receipt).SerializeToString()


def _item_id(text: str, payload_type: str) -> ItemId:
    """A receipt's item id, of the kind its echoed payload type says."""
    return ReportId(text) if payload_type == REPORT_TYPE else UpdateId(text)


def decode_receipt(payload: bytes) -> Receipt:
    """Parse an authenticated Receipt payload."""
    message = receipt_pb2.Receipt()
    _parse(message, payload, "receipt")
    try:
        outcome = Outcome(message.outcome)
        reason = RejectReason(message.reject_reason) if message.reject_reason else None
    except ValueError:
        raise MalformedMessageError("receipt has an unknown outcome or reason") from None
    return Receipt(
        item_id=_item_id(message.item_id, message.payload_type),
        payload_type=message.payload_type,
        outcome=outcome,
        received_at=required_datetime(message, "received_at"),
        receiver_member_id=MemberId(message.receiver_member_id),
        payload_sha256=message.payload_sha256,
        case_id=CaseId(message.case_id),
        forwarded_to=MemberId(message.forwarded_to),
        reject_reason=reason,
        detail=message.detail,
    )


# --- rosters -------------------------------------------------------------------


def _key_from_proto(message: roster_pb2.PublicKey) -> MemberKey:
    return MemberKey(
        key_id=KeyId(message.key_id),
        public_key=message.public_key,
        not_before=optional_datetime(message, "not_before"),
        not_after=optional_datetime(message, "not_after"),
        revoked=message.revoked,
    )


def _member_from_proto(message: roster_pb2.Member) -> Member:
    role = _enum(Role, message.role, f"member {message.member_id!r} role")
    assert isinstance(role, Role)
    keys = [_key_from_proto(k) for k in message.signing_keys]
    return Member(
        member_id=MemberId(message.member_id),
        role=role,
        display_name=message.display_name,
        jurisdictions=frozenset(message.jurisdictions),
        endpoint=message.endpoint,
        keys={k.key_id: k for k in keys},
    )


def decode_roster(data: bytes) -> Roster:
    """Parse threshold-verified roster bytes into a structurally valid Roster."""
    message = roster_pb2.Roster()
    _parse(message, data, "roster")
    try:
        return Roster.build(
            version=message.version,
            issued_at=required_datetime(message, "issued_at"),
            expires_at=required_datetime(message, "expires_at"),
            members=[_member_from_proto(m) for m in message.members],
            fallback_member_id=MemberId(message.fallback_member_id),
        )
    except RosterError as exc:
        raise MalformedMessageError(
            f"roster is invalid: {exc}", field="roster", reason=INVALID_ROSTER
        ) from exc


def _key_to_proto(key: MemberKey) -> roster_pb2.PublicKey:
    message = roster_pb2.PublicKey(
        key_id=key.key_id, public_key=key.public_key, revoked=key.revoked
    )
    set_optional_time(message, "not_before", key.not_before)
    set_optional_time(message, "not_after", key.not_after)
    return message


def encode_roster(roster: Roster) -> bytes:
    """Serialized roster, ready for the root keys to sign."""
    message = roster_pb2.Roster(
        version=roster.version,
        issued_at=to_timestamp(roster.issued_at),
        expires_at=to_timestamp(roster.expires_at),
        fallback_member_id=roster.fallback_member_id,
        members=[
            roster_pb2.Member(
                member_id=m.member_id,
                display_name=m.display_name,
                role=m.role.value,  # type: ignore[arg-type]
                jurisdictions=sorted(m.jurisdictions),
                endpoint=m.endpoint,
                signing_keys=[_key_to_proto(k) for k in m.keys.values()],
            )
            for m in roster.members.values()
        ],
    )
    return message.SerializeToString()


def signed_roster_to_proto(
    roster: bytes, signatures: Iterable[RootSignature]
) -> roster_pb2.SignedRoster:
    """The wire form of a signed roster."""
    return roster_pb2.SignedRoster(
        roster=roster,
        signatures=[
            roster_pb2.RootSignature(key_id=s.key_id, signature=s.signature) for s in signatures
        ],
    )


def signed_roster_from_proto(
    message: roster_pb2.SignedRoster,
) -> tuple[bytes, tuple[RootSignature, ...]]:
    """Roster bytes and root signatures of a wire signed roster (unverified)."""
    signatures = tuple(RootSignature(s.key_id, s.signature) for s in message.signatures)
    return message.roster, signatures


def decode_signed_roster(data: bytes) -> tuple[bytes, tuple[RootSignature, ...]]:
    """Parse a serialized SignedRoster (e.g. roster.bin)."""
    message = roster_pb2.SignedRoster()
    _parse(message, data, "signed roster")
    return signed_roster_from_proto(message)


def encode_signed_roster(roster: bytes, signatures: Iterable[RootSignature]) -> bytes:
    """Serialized SignedRoster (roster.bin) for roster bytes and root signatures."""
    return signed_roster_to_proto(roster, signatures).SerializeToString()


def encode_root_signature(signature: RootSignature) -> bytes:
    """One detached root signature as a serialized RootSignature (a ``.sig`` file)."""
    message = roster_pb2.RootSignature(key_id=signature.key_id, signature=signature.signature)
    return message.SerializeToString()


def decode_root_signature(data: bytes) -> RootSignature:
    """Parse a serialized RootSignature (unverified)."""
    message = roster_pb2.RootSignature()
    _parse(message, data, "root signature")
    if not message.key_id or not message.signature:
        raise MalformedMessageError("root signature lacks a key id or a signature")
    return RootSignature(message.key_id, message.signature)


# --- cases ---------------------------------------------------------------------


def case_to_proto(view: CaseView) -> case_pb2.Case:
    """The wire form of a case."""
    message = case_pb2.Case(
        case_id=view.case_id,
        canonical_url=view.canonical_url,
        hosting_country=view.hosting_country,
        responsible_member_id=view.responsible_member_id,
        status=int(view.status),  # type: ignore[arg-type]
        known_content_case_ids=list(view.known_content_case_ids),
        reappearance_of_case_id=view.reappearance_of_case_id,
        created_at=to_timestamp(view.created_at),
        updated_at=to_timestamp(view.updated_at),
    )
    for update, envelope in zip(view.history, view.history_envelopes, strict=True):
        message.history.append(status_update_to_proto(update))
        message.history_envelopes.append(envelope_to_proto(envelope))
    set_optional_time(message, "police_acknowledged_at", view.police_acknowledged_at)
    set_optional_time(message, "hold_until", view.hold_until)
    message.police_reference = view.police_reference
    message.hold_reason = view.hold_reason
    message.overdue = view.overdue
    message.report_count = view.report_count
    message.history_count = view.history_count
    message.known_content_case_count = view.link_count
    message.reports.extend(case_report_to_proto(r) for r in view.reports)
    return message


def case_report_to_proto(view: CaseReportView) -> case_pb2.CaseReport:
    """The wire form of one report of a case."""
    return case_pb2.CaseReport(
        report_id=view.report_id,
        origin_member_id=view.origin_member_id,
        received_at=to_timestamp(view.received_at),
        report=report_to_proto(view.report),
        envelope=envelope_to_proto(view.envelope),
    )


def case_filter_from_proto(message: case_pb2.CaseFilter) -> CaseFilter:
    """Domain filter from the wire; unset fields do not filter."""
    return CaseFilter(
        statuses=frozenset(int(s) for s in message.statuses),
        hosting_countries=frozenset(message.hosting_countries),
        created_since=optional_datetime(message, "created_since"),
        created_until=optional_datetime(message, "created_until"),
        reporter_member_id=MemberId(message.reporter_member_id),
        overdue_only=message.overdue_only,
    )


# --- status updates ------------------------------------------------------------


def status_update_to_proto(update: StatusUpdate) -> status_pb2.StatusUpdate:
    """The wire form of a status update."""
    return status_pb2.StatusUpdate(
        update_id=update.update_id,
        case_id=update.case_id,
        report_ids=list(update.report_ids),
        member_id=update.member_id,
        status=int(update.status),  # type: ignore[arg-type]
        sequence=update.sequence,
        observed_at=to_timestamp(update.observed_at),
        note=update.note,
        new_hosting_country=update.new_hosting_country,
    )


def encode_status_update(update: StatusUpdate) -> bytes:
    """Serialized status update payload, ready to sign."""
    return status_update_to_proto(update).SerializeToString()


def decode_status_update(payload: bytes) -> StatusUpdate:
    """Parse an authenticated StatusUpdate payload."""
    message = status_pb2.StatusUpdate()
    _parse(message, payload, "status update")
    _refuse_blobs(message, len(payload))
    try:
        status = CaseStatus(message.status)
    except ValueError:
        raise MalformedMessageError(
            "status has an unknown value", field="status", reason=UNKNOWN_ENUM_VALUE
        ) from None
    return StatusUpdate(
        update_id=UpdateId(message.update_id),
        case_id=CaseId(message.case_id),
        # One cast for the tuple rather than a call per id.
        report_ids=cast(tuple[ReportId, ...], tuple(message.report_ids)),
        member_id=MemberId(message.member_id),
        status=status,
        sequence=message.sequence,
        observed_at=required_datetime(message, "observed_at"),
        note=message.note,
        new_hosting_country=message.new_hosting_country,
    )


# --- statistics ----------------------------------------------------------------


def stats_to_proto(result: TakedownStats) -> hotline_service_pb2.GetStatsResponse:
    """The wire form of takedown statistics."""
    message = hotline_service_pb2.GetStatsResponse(
        counts_by_status=[
            hotline_service_pb2.StatusCount(status=int(k), count=v)  # type: ignore[arg-type]
            for k, v in sorted(result.by_status.items())
        ],
        counts_by_country=[
            hotline_service_pb2.CountryCount(hosting_country=k, count=v)
            for k, v in sorted(result.by_country.items())
        ],
        removed_count=result.removed_count,
        removed_within_72h_share=result.within_window_share or 0.0,
    )
    if result.median is not None and result.p90 is not None:
        message.takedown_median.FromTimedelta(result.median)
        message.takedown_p90.FromTimedelta(result.p90)
    for bound, count in result.histogram:
        bucket = message.takedown_histogram.add(count=count)
        if bound is not None:
            bucket.upper_bound.FromTimedelta(bound)
    for case in result.open_past_window:
        item = message.open_past_72h.add(
            case_id=case.case_id,
            status=int(case.status),
            hosting_country=case.hosting_country,
            first_reported_at=to_timestamp(case.first_reported_at),
        )
        item.open_for.FromTimedelta(case.open_for)
    return message
