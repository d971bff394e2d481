"""Report content (section 3): well-formedness, media, limits, clock skew, author."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from conformance.items import ItemFactory, ItemSpec, rejected
from conformance.registry import item_case
from hfp.v1 import receipt_pb2, report_pb2

R = receipt_pb2
P = report_pb2
MALFORMED = R.REJECT_REASON_MALFORMED_PAYLOAD
MEDIA = R.REJECT_REASON_MEDIA_NOT_ALLOWED
LIMIT = R.REJECT_REASON_LIMIT_EXCEEDED
HASH_LENGTHS = {
    P.HASH_ALGORITHM_SHA256: 32,
    P.HASH_ALGORITHM_SHA1: 20,
    P.HASH_ALGORITHM_MD5: 16,
    P.HASH_ALGORITHM_PDQ: 32,
    P.HASH_ALGORITHM_PHOTODNA: 144,
}
MAX_URL = 4096
MAX_HASHES = 32
MAX_NOTE = 2000
MAX_SITE_TYPE = 64


def fake_hash(label: str, size: int) -> bytes:
    """Deterministic bytes of ``size`` that look like a hash."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _url_of_length(f: ItemFactory, tag: str, length: int) -> str:
    base = f.url(tag) + "/"
    return base + "a" * (length - len(base))


# --- malformed -----------------------------------------------------------------------


@item_case("RPT-001", "3", "a report without created_at gets MALFORMED_PAYLOAD", reject=True)
def missing_created_at(f: ItemFactory) -> ItemSpec:
    return f.report_spec(f.report("rpt-no-created-at", omit_created_at=True), rejected(MALFORMED))


@item_case("RPT-002", "3", "a report_id that is not a UUID gets MALFORMED_PAYLOAD", reject=True)
def bad_report_id(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-bad-id", report_id="report-42")
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-003", "3", "a lower-case hosting_country gets MALFORMED_PAYLOAD", reject=True)
def lower_case_country(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-lower-country", country=f.target_country.lower())
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-004", "3", "a three-letter hosting_country gets MALFORMED_PAYLOAD", reject=True)
def three_letter_country(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-long-country", country=f.target_country + "X")
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-005", "3", "a 31-byte SHA-256 hash value gets MALFORMED_PAYLOAD", reject=True)
def short_sha256(f: ItemFactory) -> ItemSpec:
    report = f.report(
        "rpt-short-sha256", hashes=[(P.HASH_ALGORITHM_SHA256, fake_hash("short", 31))]
    )
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-006", "3", "a 20-byte value labelled MD5 gets MALFORMED_PAYLOAD", reject=True)
def mislabelled_md5(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-md5-20", hashes=[(P.HASH_ALGORITHM_MD5, fake_hash("md5", 20))])
    return f.report_spec(report, rejected(MALFORMED))


@item_case(
    "RPT-007", "3", "an unknown media_type enum value (99) gets MALFORMED_PAYLOAD", reject=True
)
def unknown_media_type(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-unknown-enum")
    report.media_type = 99  # type: ignore[assignment]
    return f.report_spec(report, rejected(MALFORMED))


@item_case(
    "RPT-008", "3", "a hash with HASH_ALGORITHM_UNSPECIFIED gets MALFORMED_PAYLOAD", reject=True
)
def unspecified_algorithm(f: ItemFactory) -> ItemSpec:
    report = f.report(
        "rpt-unspecified-hash", hashes=[(P.HASH_ALGORITHM_UNSPECIFIED, fake_hash("u", 32))]
    )
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-009", "3", "a javascript: URL gets MALFORMED_PAYLOAD", reject=True)
def javascript_url(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-js", url="javascript:alert(1)")
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-010", "3", "a relative URL gets MALFORMED_PAYLOAD", reject=True)
def relative_url(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-relative", url="/images/1.jpg")
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-011", "3", "a hosting_ip that is no IP address gets MALFORMED_PAYLOAD", reject=True)
def bad_ip(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-bad-ip")
    report.hosting_ip = "999.1.2.3"
    return f.report_spec(report, rejected(MALFORMED))


@item_case("RPT-012", "3", "a report without a URL gets MALFORMED_PAYLOAD", reject=True)
def missing_url(f: ItemFactory) -> ItemSpec:
    return f.report_spec(f.report("rpt-no-url", url=""), rejected(MALFORMED))


# --- media -----------------------------------------------------------------------------


@item_case("RPT-013", "0", "a data: URL gets MEDIA_NOT_ALLOWED", reject=True)
def data_url(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-data", url="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE=")
    return f.report_spec(report, rejected(MEDIA))


@item_case("RPT-014", "0", "an upper-case DATA: URL gets MEDIA_NOT_ALLOWED", reject=True)
def data_url_upper(f: ItemFactory) -> ItemSpec:
    report = f.report("rpt-data-upper", url="DATA:image/jpeg;base64,/9j/4AAQSkZJRgABAQ==")
    return f.report_spec(report, rejected(MEDIA))


@item_case(
    "RPT-015",
    "0",
    "a 145-byte hash value (longer than any hash) gets MEDIA_NOT_ALLOWED",
    reject=True,
)
def media_in_hash(f: ItemFactory) -> ItemSpec:
    report = f.report(
        "rpt-media-hash", hashes=[(P.HASH_ALGORITHM_PHOTODNA, fake_hash("media", 145))]
    )
    return f.report_spec(report, rejected(MEDIA))


# --- well-formed variety -------------------------------------------------------------


@item_case(
    "RPT-016",
    "3",
    "a report with every optional field and every hash algorithm is accepted",
    reject=False,
)
def full_report(f: ItemFactory) -> ItemSpec:
    report = f.report(
        "rpt-full",
        hashes=[(alg, fake_hash(f"full-{alg}", n)) for alg, n in HASH_LENGTHS.items()],
    )
    report.media_type = P.MEDIA_TYPE_VIDEO
    report.classification = P.CLASSIFICATION_NATIONALLY_ILLEGAL
    report.hosting_ip = "2001:db8::7"
    report.hosting_asn = 64500
    report.site_type = "image host"
    report.victim_age_group = P.VICTIM_AGE_GROUP_PREPUBESCENT
    report.analyst_note = "Gallery page; see hashes."
    return f.report_spec(report, f.accepted_here())


@item_case(
    "RPT-017", "3", "an IDN host with percent-encoding in the path is accepted", reject=False
)
def idn_report(f: ItemFactory) -> ItemSpec:
    host = f.url_prefix.removeprefix("https://")
    report = f.report("rpt-idn", url=f"https://bücher.{host}/%E2%9C%93/rpt-idn")
    return f.report_spec(report, f.accepted_here())


@item_case("RPT-018", "3", "an ftp URL is accepted", reject=False)
def ftp_report(f: ItemFactory) -> ItemSpec:
    url = f.url("rpt-ftp").replace("https://", "ftp://", 1)
    return f.report_spec(f.report("rpt-ftp", url=url), f.accepted_here())


# --- limits ------------------------------------------------------------------------------


@item_case("LIM-001", "3", "33 hashes get LIMIT_EXCEEDED", reject=True)
def too_many_hashes(f: ItemFactory) -> ItemSpec:
    hashes = [(P.HASH_ALGORITHM_SHA256, fake_hash(f"many-{i}", 32)) for i in range(MAX_HASHES + 1)]
    return f.report_spec(f.report("lim-33-hashes", hashes=hashes), rejected(LIMIT))


@item_case("LIM-002", "3", "exactly 32 hashes are accepted", reject=False)
def max_hashes(f: ItemFactory) -> ItemSpec:
    hashes = [
        (P.HASH_ALGORITHM_SHA256, fake_hash(f"{f.url_prefix}/max-{i}", 32))
        for i in range(MAX_HASHES)
    ]
    return f.report_spec(f.report("lim-32-hashes", hashes=hashes), f.accepted_here())


@item_case("LIM-003", "3", "a URL of 4097 characters gets LIMIT_EXCEEDED", reject=True)
def too_long_url(f: ItemFactory) -> ItemSpec:
    url = _url_of_length(f, "lim-url-4097", MAX_URL + 1)
    return f.report_spec(f.report("lim-url", url=url), rejected(LIMIT))


@item_case("LIM-004", "3", "a URL of exactly 4096 characters is accepted", reject=False)
def max_url(f: ItemFactory) -> ItemSpec:
    url = _url_of_length(f, "lim-url-4096", MAX_URL)
    return f.report_spec(f.report("lim-url", url=url), f.accepted_here())


@item_case("LIM-005", "3", "an analyst_note of 2001 characters gets LIMIT_EXCEEDED", reject=True)
def too_long_note(f: ItemFactory) -> ItemSpec:
    report = f.report("lim-note-2001")
    report.analyst_note = "n" * (MAX_NOTE + 1)
    return f.report_spec(report, rejected(LIMIT))


@item_case(
    "LIM-006",
    "3",
    "an analyst_note of 2000 non-ASCII characters (4000 bytes) is accepted",
    reject=False,
)
def max_note_chars(f: ItemFactory) -> ItemSpec:
    report = f.report("lim-note-2000")
    report.analyst_note = "é" * MAX_NOTE
    return f.report_spec(report, f.accepted_here())


@item_case("LIM-007", "3", "a site_type of 65 characters gets LIMIT_EXCEEDED", reject=True)
def too_long_site_type(f: ItemFactory) -> ItemSpec:
    report = f.report("lim-site-65")
    report.site_type = "s" * (MAX_SITE_TYPE + 1)
    return f.report_spec(report, rejected(LIMIT))


@item_case("LIM-008", "3", "a site_type of exactly 64 characters is accepted", reject=False)
def max_site_type(f: ItemFactory) -> ItemSpec:
    report = f.report("lim-site-64")
    report.site_type = "s" * MAX_SITE_TYPE
    return f.report_spec(report, f.accepted_here())


# --- clock and author -----------------------------------------------------------------


@item_case(
    "CLK-001", "3", "created_at one day in the receiver's future gets CLOCK_SKEW", reject=True
)
def far_future(f: ItemFactory) -> ItemSpec:
    report = f.report("clk-future", created_at=f.future(timedelta(days=1)))
    return f.report_spec(report, rejected(R.REJECT_REASON_CLOCK_SKEW))


@item_case(
    "CLK-002",
    "3",
    "created_at 10 minutes in the future gets CLOCK_SKEW",
    reject=True,
    vector=False,
)
def ten_minutes_ahead(f: ItemFactory) -> ItemSpec:
    report = f.report("clk-10min", created_at=f.future(timedelta(minutes=10)))
    return f.report_spec(report, rejected(R.REJECT_REASON_CLOCK_SKEW))


@item_case(
    "CLK-003",
    "3",
    "created_at 4 minutes in the future (inside 5 minutes) is accepted",
    reject=False,
    vector=False,
)
def four_minutes_ahead(f: ItemFactory) -> ItemSpec:
    report = f.report("clk-4min", created_at=f.future(timedelta(minutes=4)))
    return f.report_spec(report, f.accepted_here())


@item_case(
    "CLK-004",
    "3",
    "created_at a year in the past is accepted (only the future is bounded)",
    reject=False,
)
def year_old(f: ItemFactory) -> ItemSpec:
    report = f.report("clk-old", created_at=f.future(timedelta(days=-365)))
    return f.report_spec(report, f.accepted_here())


@item_case(
    "AUT-001",
    "2",
    "origin_member_id naming another member than the signer gets AUTHOR_MISMATCH",
    reject=True,
)
def author_mismatch(f: ItemFactory) -> ItemSpec:
    report = f.report("aut-other", author=f.other.member_id)
    return f.report_spec(report, rejected(R.REJECT_REASON_AUTHOR_MISMATCH))


@item_case("AUT-002", "2", "an empty origin_member_id gets AUTHOR_MISMATCH", reject=True)
def author_empty(f: ItemFactory) -> ItemSpec:
    report = f.report("aut-empty", author="")
    return f.report_spec(report, rejected(R.REJECT_REASON_AUTHOR_MISMATCH))
