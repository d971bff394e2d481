"""Parsing and checking one authenticated item, per payload type.

Runs after the signature has verified (verify, then parse): decodes the
payload, then applies the post-parse checks in the protocol's order (key
window against the item's own timestamp, author = signer, content, path).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from crypto.dsse import Envelope, verify_envelope_signature
from federation.core import envelope_checks as checks
from federation.core import handover
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.ids import ItemId, MemberId, ReportId, UpdateId
from federation.core.limits import Limits
from federation.core.reasons import (
    RECEIPT_TYPE,
    REPORT_TYPE,
    STATUS_UPDATE_TYPE,
    Outcome,
    Rejection,
    RejectReason,
)
from federation.core.report import Report, check_report
from federation.core.roster import MemberKey, Roster
from federation.core.status_update import StatusUpdate, check_status_update
from federation.wire.convert import decode_receipt, decode_report, decode_status_update
from federation.wire.errors import EmbeddedMediaError, MalformedMessageError


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """An authenticated, valid report and where it must be handled."""

    report: Report
    canonical: str
    #: The report's hosting country, or the new one named by its last MOVED.
    hosting_country: str
    #: The verified MOVED updates that re-routed it (ForwardedItem.moved_by).
    chain: tuple[StatusUpdate, ...] = ()

    @property
    def move_id(self) -> UpdateId | Literal[""]:
        """The update id of the MOVED that sent this delivery ("" if none):
        with the report id, the idempotency key of a moved delivery."""
        return self.chain[-1].update_id if self.chain else ""


@dataclass(frozen=True, slots=True)
class ParsedUpdate:
    """An authenticated, valid status update and the proofs it came with."""

    update: StatusUpdate
    #: Verified MOVED updates handing a report over to the update's signer.
    chain: tuple[StatusUpdate, ...] = ()
    #: The reports the signer's verified receipts (ForwardedItem.joined_receipts)
    #: say it filed into the update's case.
    joined_reports: tuple[ReportId, ...] = ()


Parsed = ParsedReport | ParsedUpdate


def _decode(payload_type: str, payload: bytes) -> Report | StatusUpdate | Rejection:
    try:
        if payload_type == REPORT_TYPE:
            return decode_report(payload)
        return decode_status_update(payload)
    except EmbeddedMediaError as exc:
        return Rejection(RejectReason.MEDIA_NOT_ALLOWED, str(exc))
    except MalformedMessageError as exc:
        return Rejection(RejectReason.MALFORMED_PAYLOAD, str(exc))


def _id_of(decoded: Report | StatusUpdate) -> ItemId:
    return decoded.report_id if isinstance(decoded, Report) else decoded.update_id


def item_id_of(envelope: Envelope) -> ItemId | Literal[""]:
    """The id inside a verified item's payload ("" when it does not decode)."""
    decoded = _decode(envelope.payload_type, envelope.payload)
    return "" if isinstance(decoded, Rejection) else _id_of(decoded)


@dataclass(frozen=True, slots=True)
class PayloadChecker:
    """Post-signature checks of this node."""

    member_id: MemberId
    limits: Limits

    def parse(
        self,
        envelope: Envelope,
        key: MemberKey,
        via: tuple[MemberId, ...],
        proofs: Proofs,
        sender: MemberId,
        roster: Roster,
        now: datetime,
    ) -> tuple[ItemId | Literal[""], Parsed | Rejection]:
        """Decode and check an item whose signature has verified.

        Returns the item's id (empty when it does not decode: a refusal then
        cannot name it) and the parsed item or the reason it is refused.
        """
        decoded = _decode(envelope.payload_type, envelope.payload)
        if isinstance(decoded, Rejection):
            return "", decoded
        return _id_of(decoded), self.check(decoded, envelope, key, via, proofs, sender, roster, now)

    def check(
        self,
        decoded: Report | StatusUpdate,
        envelope: Envelope,
        key: MemberKey,
        via: tuple[MemberId, ...],
        proofs: Proofs,
        sender: MemberId,
        roster: Roster,
        now: datetime,
    ) -> Parsed | Rejection:
        """The checks after parsing, in the protocol's order, of an item
        decoded from ``envelope`` (or encoded into it by this node)."""
        if isinstance(decoded, Report):
            signed_at, author = decoded.created_at, decoded.origin_member_id
            content = check_report(decoded, now, self.limits)
        else:
            signed_at, author = decoded.observed_at, decoded.member_id
            content = check_status_update(decoded, now, self.limits)
        refusal = (
            checks.check_key_window(key, signed_at)
            or checks.check_author(author, envelope)
            or content
            or checks.check_path(sender, envelope, via, self.member_id, self.limits)
        )
        if refusal is not None:
            return refusal
        chain = verify_chain(proofs.moved_by, roster, self.limits)
        if isinstance(chain, Rejection):
            return chain
        if isinstance(decoded, StatusUpdate):
            return self._update(decoded, chain, proofs.joined_receipts, roster)
        return self._report(decoded, via, chain, roster)

    def _update(
        self,
        update: StatusUpdate,
        chain: tuple[StatusUpdate, ...],
        joined_receipts: tuple[Envelope, ...],
        roster: Roster,
    ) -> ParsedUpdate | Rejection:
        if len(joined_receipts) > self.limits.max_joined_receipts:
            return Rejection(
                RejectReason.LIMIT_EXCEEDED,
                f"joined_receipts holds more than {self.limits.max_joined_receipts} receipts",
            )
        joined: list[ReportId] = []
        for receipt in joined_receipts:
            found = verify_joined_receipt(receipt, update, roster)
            if isinstance(found, Rejection):
                return found
            joined.append(found)
        return ParsedUpdate(update, chain, tuple(joined))

    def _report(
        self,
        report: Report,
        via: tuple[MemberId, ...],
        chain: tuple[StatusUpdate, ...],
        roster: Roster,
    ) -> ParsedReport | Rejection:
        try:
            canonical = canonical_url(report.url)
        except UrlError as exc:
            return Rejection(RejectReason.MALFORMED_PAYLOAD, f"url: {exc}")
        if not chain:
            return ParsedReport(report, canonical, report.hosting_country)
        refusal = handover.check_links(chain, report.report_id, roster)
        if refusal is not None:
            return refusal
        if chain[-1].member_id not in via:
            return Rejection(RejectReason.SENDER_MISMATCH, "moved_by is not signed by a forwarder")
        # The chain must start where the report's own hosting country put it
        # (under our roster): a member that merely relayed the report cannot
        # move it.
        if chain[0].member_id != roster.responsible_for(report.hosting_country).member_id:
            return Rejection(
                RejectReason.NOT_RESPONSIBLE,
                "moved_by does not start at the member responsible for the report",
            )
        return ParsedReport(report, canonical, chain[-1].new_hosting_country, chain)


@dataclass(frozen=True, slots=True)
class Proofs:
    """What a ForwardedItem carries beside its envelope to prove a hand-over."""

    moved_by: tuple[Envelope, ...] = ()
    joined_receipts: tuple[Envelope, ...] = ()


NO_PROOFS = Proofs()


def _verified(
    envelope: Envelope, payload_type: str, roster: Roster, what: str
) -> MemberKey | Rejection:
    """The signer's live key, once ``envelope`` (a proof) verifies with it."""
    if envelope.payload_type != payload_type:
        return Rejection(RejectReason.MALFORMED_PAYLOAD, f"{what} must be a {payload_type}")
    key = checks.find_signing_key(envelope, roster)
    if isinstance(key, Rejection):
        return key
    if not verify_envelope_signature(envelope, key.public_key):
        return Rejection(RejectReason.BAD_SIGNATURE, f"{what} signature does not verify")
    return key


def verify_chain(
    envelopes: tuple[Envelope, ...], roster: Roster, limits: Limits
) -> tuple[StatusUpdate, ...] | Rejection:
    """Verify and decode each update of a ForwardedItem.moved_by chain (the
    links between them are checked by federation.core.handover)."""
    if len(envelopes) > limits.max_move_chain:
        return Rejection(
            RejectReason.LIMIT_EXCEEDED, f"moved_by holds more than {limits.max_move_chain} updates"
        )
    chain: list[StatusUpdate] = []
    for envelope in envelopes:
        key = _verified(envelope, STATUS_UPDATE_TYPE, roster, "moved_by")
        if isinstance(key, Rejection):
            return key
        decoded = _decode(STATUS_UPDATE_TYPE, envelope.payload)
        if isinstance(decoded, Rejection):
            return decoded
        assert isinstance(decoded, StatusUpdate)
        refusal = checks.check_key_window(key, decoded.observed_at) or checks.check_author(
            decoded.member_id, envelope
        )
        if refusal is not None:
            return refusal
        chain.append(decoded)
    return tuple(chain)


def verify_joined_receipt(
    envelope: Envelope, update: StatusUpdate, roster: Roster
) -> ReportId | Rejection:
    """The report a receipt of ForwardedItem.joined_receipts shows the update's signer
    filed into the update's case; a Rejection when it shows nothing of the kind."""
    key = _verified(envelope, RECEIPT_TYPE, roster, "joined_receipts")
    if isinstance(key, Rejection):
        return key
    try:
        receipt = decode_receipt(envelope.payload)
    except MalformedMessageError as exc:
        return Rejection(RejectReason.MALFORMED_PAYLOAD, f"joined_receipts: {exc}")
    if not (
        envelope.signer_member_id == update.member_id == receipt.receiver_member_id
        and receipt.case_id == update.case_id
        and receipt.payload_type == REPORT_TYPE
        and receipt.outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE)
    ):
        return Rejection(
            RejectReason.NOT_RESPONSIBLE, "a joined receipt does not tie a report to this case"
        )
    # Its payload type is REPORT_TYPE (checked above), so the item is a report.
    return ReportId(receipt.item_id)
