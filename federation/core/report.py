"""The Report domain type and its semantic checks."""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from federation.core.canonical_url import UrlError, canonical_url
from federation.core.ids import MemberId, ReportId, is_country, is_member_id, is_uuid
from federation.core.limits import Limits
from federation.core.reasons import Rejection, RejectReason


class HashAlgorithm(enum.IntEnum):
    """Content hash algorithms; values equal the wire enum's."""

    SHA256 = 1
    SHA1 = 2
    MD5 = 3
    PDQ = 4
    PHOTODNA = 5


HASH_LENGTHS: dict[HashAlgorithm, int] = {
    HashAlgorithm.SHA256: 32,
    HashAlgorithm.SHA1: 20,
    HashAlgorithm.MD5: 16,
    HashAlgorithm.PDQ: 32,
    HashAlgorithm.PHOTODNA: 144,
}
#: A bytes value longer than the longest hash can only be embedded media.
MAX_HASH_BYTES = max(HASH_LENGTHS.values())


@dataclass(frozen=True, slots=True)
class ContentHash:
    """One hash of the reported content."""

    algorithm: HashAlgorithm
    value: bytes


@dataclass(frozen=True, slots=True)
class Report:
    """A report as signed by its author. Enum fields keep their wire numbers."""

    report_id: ReportId
    origin_member_id: MemberId
    created_at: datetime
    url: str
    hashes: tuple[ContentHash, ...]
    media_type: int
    classification: int
    hosting_country: str
    hosting_ip: str = ""
    hosting_asn: int = 0
    site_type: str = ""
    victim_age_group: int = 0
    analyst_note: str = ""


def _reject(reason: RejectReason, detail: str) -> Rejection:
    return Rejection(reason, detail)


#: Whitespace (str.isspace's set, which is what ``\s`` matches) and C0/DEL
#: controls: one regex scan instead of a Python loop per character.
_SPACE_OR_CONTROL: Final = re.compile(r"[\s\x00-\x1f\x7f]")


def check_url(url: str, limits: Limits) -> Rejection | None:
    """Check the URL's length, that it embeds no media, and that it holds
    no whitespace or control characters.

    Its syntax (absolute http/https/ftp with a host, valid port) is what
    ``canonical_url`` accepts: one parser, not two that could disagree. The
    URL is only inspected as text: nothing here (or anywhere in the node)
    ever fetches it.
    """
    if len(url) > limits.max_url_chars:
        return _reject(RejectReason.LIMIT_EXCEEDED, f"url longer than {limits.max_url_chars}")
    if url[:5].lower() == "data:":
        return _reject(RejectReason.MEDIA_NOT_ALLOWED, "data: URLs embed media")
    if _SPACE_OR_CONTROL.search(url):
        return _reject(RejectReason.MALFORMED_PAYLOAD, "url contains whitespace or controls")
    try:
        canonical_url(url)
    except UrlError as exc:
        return _reject(RejectReason.MALFORMED_PAYLOAD, f"url: {exc}")
    return None


def check_hashes(hashes: tuple[ContentHash, ...], limits: Limits) -> Rejection | None:
    """Check the count of hashes and each value's length for its algorithm."""
    if len(hashes) > limits.max_hashes:
        return _reject(RejectReason.LIMIT_EXCEEDED, f"more than {limits.max_hashes} hashes")
    for index, item in enumerate(hashes):
        if len(item.value) > MAX_HASH_BYTES:
            return _reject(
                RejectReason.MEDIA_NOT_ALLOWED, f"hashes[{index}] is too long for a hash"
            )
        expected = HASH_LENGTHS[item.algorithm]
        if len(item.value) != expected:
            return _reject(
                RejectReason.MALFORMED_PAYLOAD,
                f"hashes[{index}] must be {expected} bytes for {item.algorithm.name}",
            )
    return None


def _check_fields(report: Report, limits: Limits) -> Rejection | None:
    malformed = RejectReason.MALFORMED_PAYLOAD
    if not is_uuid(report.report_id):
        return _reject(malformed, "report_id must be a canonical lower-case UUID")
    if not is_member_id(report.origin_member_id):
        return _reject(malformed, "origin_member_id is not a member id")
    if not is_country(report.hosting_country):
        return _reject(malformed, "hosting_country must be ISO 3166-1 alpha-2 or ZZ")
    if report.hosting_ip:
        try:
            ipaddress.ip_address(report.hosting_ip)
        except ValueError:
            return _reject(malformed, "hosting_ip is not an IP address")
    if len(report.site_type) > limits.max_site_type_chars:
        return _reject(RejectReason.LIMIT_EXCEEDED, "site_type too long")
    if len(report.analyst_note) > limits.max_note_chars:
        return _reject(RejectReason.LIMIT_EXCEEDED, "analyst_note too long")
    return None


def check_report(report: Report, now: datetime, limits: Limits) -> Rejection | None:
    """Semantic checks of an authenticated report, in a fixed order."""
    if report.created_at > now + limits.max_clock_skew:
        return _reject(RejectReason.CLOCK_SKEW, "created_at is too far in the future")
    return (
        _check_fields(report, limits)
        or check_url(report.url, limits)
        or check_hashes(report.hashes, limits)
    )
