"""Parsing and checking one authenticated item, per payload type.

Runs after the signature has verified (verify, then parse): decodes the
payload, then applies the post-parse checks in the protocol's order (key
window against the item's own timestamp, author = signer, content, path).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crypto.dsse import Envelope, verify_envelope_signature
from federation.core import envelope_checks as checks
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.case_status import CaseStatus
from federation.core.limits import Limits
from federation.core.reasons import REPORT_TYPE, STATUS_UPDATE_TYPE, Rejection, RejectReason
from federation.core.report import Report, check_report
from federation.core.roster import MemberKey, Roster
from federation.core.status_update import StatusUpdate, check_status_update
from federation.wire.convert import decode_report, decode_status_update
from federation.wire.errors import EmbeddedMediaError, MalformedMessageError


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """An authenticated, valid report and where it must be handled."""

    report: Report
    canonical: str
    #: The report's hosting country, or the new one named by a MOVED update.
    hosting_country: str
    moved: bool = False


@dataclass(frozen=True, slots=True)
class ParsedUpdate:
    """An authenticated, valid status update."""

    update: StatusUpdate


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


def _id_of(decoded: Report | StatusUpdate) -> str:
    return decoded.report_id if isinstance(decoded, Report) else decoded.update_id


def item_id_of(envelope: Envelope) -> str:
    """The id inside a verified item's payload ("" when it does not decode)."""
    decoded = _decode(envelope.payload_type, envelope.payload)
    return "" if isinstance(decoded, Rejection) else _id_of(decoded)


@dataclass(frozen=True, slots=True)
class PayloadChecker:
    """Post-signature checks of this node."""

    member_id: str
    limits: Limits

    def parse(
        self,
        envelope: Envelope,
        key: MemberKey,
        via: tuple[str, ...],
        moved_by: Envelope | None,
        sender: str,
        roster: Roster,
        now: datetime,
    ) -> tuple[str, Parsed | Rejection]:
        """Decode and check an item whose signature has verified.

        Returns the item's id (empty when it does not decode: a refusal then
        cannot name it) and the parsed item or the reason it is refused.
        """
        decoded = _decode(envelope.payload_type, envelope.payload)
        if isinstance(decoded, Rejection):
            return "", decoded
        return _id_of(decoded), self.check(
            decoded, envelope, key, via, moved_by, sender, roster, now
        )

    def check(
        self,
        decoded: Report | StatusUpdate,
        envelope: Envelope,
        key: MemberKey,
        via: tuple[str, ...],
        moved_by: Envelope | None,
        sender: str,
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
        if isinstance(decoded, StatusUpdate):
            if moved_by is not None:
                return Rejection(RejectReason.MALFORMED_PAYLOAD, "moved_by is only for reports")
            return ParsedUpdate(decoded)
        return self._report(decoded, via, moved_by, roster)

    def _report(
        self, report: Report, via: tuple[str, ...], moved_by: Envelope | None, roster: Roster
    ) -> ParsedReport | Rejection:
        try:
            canonical = canonical_url(report.url)
        except UrlError as exc:
            return Rejection(RejectReason.MALFORMED_PAYLOAD, f"url: {exc}")
        if moved_by is None:
            return ParsedReport(report, canonical, report.hosting_country)
        move = verify_move(moved_by, report.report_id, via, roster)
        if isinstance(move, Rejection):
            return move
        return ParsedReport(report, canonical, move.new_hosting_country, moved=True)


def verify_move(
    envelope: Envelope, report_id: str, via: tuple[str, ...], roster: Roster
) -> StatusUpdate | Rejection:
    """Check a ForwardedItem.moved_by: a MOVED update, signed by a forwarder
    of this item, that names this report."""
    if envelope.payload_type != STATUS_UPDATE_TYPE:
        return Rejection(RejectReason.MALFORMED_PAYLOAD, "moved_by must be a status update")
    if envelope.signer_member_id not in via:
        return Rejection(RejectReason.SENDER_MISMATCH, "moved_by is not signed by a forwarder")
    key = checks.find_signing_key(envelope, roster)
    if isinstance(key, Rejection):
        return key
    if not verify_envelope_signature(envelope, key.public_key):
        return Rejection(RejectReason.BAD_SIGNATURE, "moved_by signature does not verify")
    decoded = _decode(STATUS_UPDATE_TYPE, envelope.payload)
    if isinstance(decoded, Rejection):
        return decoded
    assert isinstance(decoded, StatusUpdate)
    refusal = checks.check_key_window(key, decoded.observed_at) or checks.check_author(
        decoded.member_id, envelope
    )
    if refusal is not None:
        return refusal
    if decoded.status is not CaseStatus.MOVED or report_id not in decoded.report_ids:
        return Rejection(RejectReason.MALFORMED_PAYLOAD, "moved_by does not move this report")
    return decoded
