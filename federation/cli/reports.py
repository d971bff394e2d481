"""``hfed report``: submit one report, or import many from a CSV file (``report import``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import grpc

from federation.cli.connect import DEADLINE, Target, channel, node_options, resolve, rpc_failure
from federation.cli.countries import COUNTRY, CountryError, check_country
from federation.cli.csv_safe import EXCEL_OPTION
from federation.cli.report_errors import ImportStoppedError, RowError
from federation.core.ids import uuid7_time
from federation.core.limits import DEFAULT_LIMITS
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import receipt_pb2, report_pb2

#: A SubmitReports call of a full chunk does a chunk's work in one commit:
#: more than one report's deadline, well below "the node is gone".
BATCH_DEADLINE = 60.0

if TYPE_CHECKING:
    from federation.cli.import_run import Submit

HASH_NAMES = {
    "sha256": report_pb2.HASH_ALGORITHM_SHA256,
    "sha1": report_pb2.HASH_ALGORITHM_SHA1,
    "md5": report_pb2.HASH_ALGORITHM_MD5,
    "pdq": report_pb2.HASH_ALGORITHM_PDQ,
    "photodna": report_pb2.HASH_ALGORITHM_PHOTODNA,
}
MEDIA = {
    "image": report_pb2.MEDIA_TYPE_IMAGE,
    "video": report_pb2.MEDIA_TYPE_VIDEO,
    "website": report_pb2.MEDIA_TYPE_WEBSITE,
    "other": report_pb2.MEDIA_TYPE_OTHER,
}
CLASSIFICATION = {
    "baseline": report_pb2.CLASSIFICATION_BASELINE,
    "national": report_pb2.CLASSIFICATION_NATIONALLY_ILLEGAL,
    "not-assessed": report_pb2.CLASSIFICATION_NOT_ASSESSED,
}
AGE = {
    "infant": report_pb2.VICTIM_AGE_GROUP_INFANT,
    "prepubescent": report_pb2.VICTIM_AGE_GROUP_PREPUBESCENT,
    "pubescent": report_pb2.VICTIM_AGE_GROUP_PUBESCENT,
    "multiple": report_pb2.VICTIM_AGE_GROUP_MULTIPLE,
}
#: Longest text a column may hold where the protocol sets no limit of its
#: own: far beyond any valid value, short enough to refuse a runaway field.
_ANY_FIELD_CHARS = 10_000
_ASN = re.compile(r"(?i)(?:AS\s?)?(\d{1,10})")
MAX_ASN = 2**32 - 1
#: C0 controls but tab and line breaks (a note may hold those), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_hash(text: str) -> report_pb2.ContentHash:
    """'ALGORITHM:HEX' → ContentHash (e.g. sha256:9f86d0...)."""
    name, sep, hexdigits = text.strip().partition(":")
    if not sep or name.lower() not in HASH_NAMES:
        raise RowError(
            f"hash {text[:80]!r}: use ALGORITHM:HEX with ALGORITHM in {', '.join(HASH_NAMES)}"
        )
    try:
        value = bytes.fromhex(hexdigits)
    except ValueError:
        raise RowError(f"hash {text[:80]!r}: the value is not hexadecimal") from None
    return report_pb2.ContentHash(algorithm=HASH_NAMES[name.lower()], value=value)


def _choice(table: Mapping[str, int], value: str, field: str) -> int:
    if not value:
        return 0
    try:
        return table[value.strip().lower()]
    except KeyError:
        raise RowError(f"{field} {value[:40]!r}: use one of {', '.join(table)}") from None


def field_limits() -> dict[str, int]:
    """Characters each column may hold (the protocol's limits, core/limits.py)."""
    return {
        "url": DEFAULT_LIMITS.max_url_chars,
        "site_type": DEFAULT_LIMITS.max_site_type_chars,
        "analyst_note": DEFAULT_LIMITS.max_note_chars,
    }


def check_sizes(fields: Mapping[str, str]) -> None:
    """RowError for a value longer than its column allows, or holding control
    characters (a NUL is a sign of a file read in the wrong encoding)."""
    limits = field_limits()
    for column, value in fields.items():
        limit = limits.get(column, _ANY_FIELD_CHARS)
        if len(value) > limit:
            raise RowError(f"{column} is {len(value):,} characters; at most {limit:,} are allowed")
        control = _CONTROL.search(value)
        if control:
            raise RowError(
                f"{column} holds the control character {control.group()!r} "
                "(is the file in another encoding? see --encoding)"
            )


def parse_asn(text: str) -> int:
    """'64500' or 'AS64500' (any case) → 64500; '' → 0 (unknown)."""
    text = text.strip()
    if not text:
        return 0
    match = _ASN.fullmatch(text)
    if match is None or int(match.group(1)) > MAX_ASN:
        raise RowError(f"hosting_asn {text[:40]!r}: use a number from 0 to {MAX_ASN}, or AS64500")
    return int(match.group(1))


def _parse_hashes(text: str) -> list[report_pb2.ContentHash]:
    items = [h for h in text.replace(";", " ").split() if h]
    if len(items) > DEFAULT_LIMITS.max_hashes:
        raise RowError(f"{len(items)} hashes; at most {DEFAULT_LIMITS.max_hashes} are allowed")
    return [parse_hash(h) for h in items]


def _country(text: str) -> str:
    try:
        return check_country(text)
    except CountryError as exc:
        raise RowError(str(exc)) from None


def build_report(fields: Mapping[str, str]) -> report_pb2.Report:
    """A Report from textual fields (CLI options or a CSV row); RowError names
    the first field that cannot be used."""
    check_sizes(fields)
    url = fields.get("url", "").strip()
    if not url or not fields.get("country", "").strip():
        raise RowError("url and country are required")
    return report_pb2.Report(
        url=url,
        hosting_country=_country(fields.get("country", "")),
        hashes=_parse_hashes(fields.get("hashes", "")),
        media_type=_choice(MEDIA, fields.get("media_type", ""), "media_type"),  # type: ignore[arg-type]
        classification=_choice(CLASSIFICATION, fields.get("classification", ""), "classification"),  # type: ignore[arg-type]
        hosting_ip=fields.get("hosting_ip", "").strip(),
        hosting_asn=parse_asn(fields.get("hosting_asn", "")),
        site_type=fields.get("site_type", "").strip(),
        victim_age_group=_choice(AGE, fields.get("victim_age_group", ""), "victim_age_group"),  # type: ignore[arg-type]
        analyst_note=fields.get("analyst_note", ""),
    )


def _submit(
    stub: pb_grpc.HotlineServiceStub, target: Target, report: report_pb2.Report
) -> receipt_pb2.Receipt:
    reply = stub.SubmitReport(
        pb.SubmitReportRequest(report=report), timeout=DEADLINE, metadata=target.metadata
    )
    return reply.receipt


def _outcome(receipt: receipt_pb2.Receipt) -> str:
    return receipt_pb2.Outcome.Name(receipt.outcome).removeprefix("OUTCOME_")


@click.command()
@node_options
@click.option("--url", required=True, help="The reported URL (never fetched).")
@click.option(
    "--country",
    required=True,
    type=COUNTRY,
    help="Hosting country, ISO 3166-1 alpha-2 (DE, NL...), or ZZ if unknown.",
)
@click.option(
    "--hash",
    "hashes",
    multiple=True,
    metavar="ALG:HEX",
    help="Content hash, e.g. sha256:9f86...; repeat for several.",
)
@click.option("--media-type", type=click.Choice(list(MEDIA)), default=None)
@click.option("--classification", type=click.Choice(list(CLASSIFICATION)), default=None)
@click.option("--ip", "hosting_ip", default="", help="Hosting IP address.")
@click.option("--asn", "hosting_asn", default="", help="Hosting autonomous system number.")
@click.option("--site-type", default="", help="Free description, at most 64 characters.")
@click.option("--age-group", type=click.Choice(list(AGE)), default=None)
@click.option("--note", default="", help="Note for the receiving analyst (≤ 2000 characters).")
def submit(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    url: str,
    country: str,
    hashes: tuple[str, ...],
    media_type: str | None,
    classification: str | None,
    hosting_ip: str,
    hosting_asn: str,
    site_type: str,
    age_group: str | None,
    note: str,
) -> None:
    """Submit one report; prints where it went (new case, duplicate, forwarded)."""
    target = resolve(config_path, devnet_dir, member)
    try:
        message = build_report(
            {
                "url": url,
                "country": country,
                "hashes": " ".join(hashes),
                "media_type": media_type or "",
                "classification": classification or "",
                "hosting_ip": hosting_ip,
                "hosting_asn": hosting_asn,
                "site_type": site_type,
                "victim_age_group": age_group or "",
                "analyst_note": note,
            }
        )
    except RowError as exc:
        raise click.UsageError(str(exc)) from exc
    with channel(target) as ch:
        try:
            receipt = _submit(pb_grpc.HotlineServiceStub(ch), target, message)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    click.echo(f"report {receipt.item_id}: {_outcome(receipt)}")
    if receipt.case_id:
        click.echo(f"  case        {receipt.case_id}")
    if receipt.forwarded_to:
        click.echo(f"  forwarded   to {receipt.forwarded_to} (responsible for {country})")
    if receipt.detail:
        click.echo(f"  detail      {receipt.detail}")


@click.command("import")
@node_options
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Per-row result CSV (default: CSV_FILE with .results.csv, numbered if it exists).",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="RESULTS",
    help="Skip the rows RESULTS (an earlier run's results) shows as submitted, resend its "
    "UNCONFIRMED rows under their report ids; append to it.",
)
@click.option(
    "--encoding",
    default=None,
    help="The file's encoding (default: detected: UTF-8, else cp1252, else latin-1).",
)
@click.option(
    "--delimiter",
    type=click.Choice([",", ";", "tab"]),
    default=None,
    help="Column delimiter (default: detected from the header line).",
)
@EXCEL_OPTION
def import_csv(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    csv_file: Path,
    results: Path | None,
    resume: Path | None,
    encoding: str | None,
    delimiter: str | None,
) -> None:
    """Submit every row of CSV_FILE; a bad row is reported, not fatal.

    \b
    Columns (header row required, names in any case; only url and country are
    mandatory): url, country, hashes (ALG:HEX separated by spaces or ';'),
    media_type, classification, hosting_ip, hosting_asn (64500 or AS64500),
    site_type, victim_age_group, analyst_note. An unknown column refuses the
    file before anything is sent.

    \b
    The encoding (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252,
    else latin-1) and the delimiter (comma, semicolon or tab) are detected
    and shown. Every row gets a line in the results file, with its line
    number and a row key; an interrupted import goes on with --resume.

    \b
    Rows go to the node 500 at a time (SubmitReports). Rows of a call the
    node never answered are written UNCONFIRMED with their report ids;
    --resume sends them again as the same reports, so a node that stored
    them answers with its stored receipts instead of filing them twice.
    Exit status: 0 all rows submitted, 1 some row failed or the import stopped.
    """
    from federation.cli import import_run

    target = resolve(config_path, devnet_dir, member)
    plan = import_run.plan(csv_file, encoding, delimiter, results, resume)
    with channel(target) as ch:
        tally = import_run.execute(plan, _submitter(pb_grpc.HotlineServiceStub(ch), target))
    click.echo(tally.summary(plan.results))
    if tally.failed:
        raise SystemExit(1)


def _submitter(stub: pb_grpc.HotlineServiceStub, target: Target) -> Submit:
    """Chunks of rows to SubmitReports; a node that cannot be reached stops the import."""

    def submit(rows: Sequence[tuple[str, Mapping[str, str]]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(rows)
        sent: list[int] = []
        request = pb.SubmitReportsRequest()
        for i, (report_id, fields) in enumerate(rows):
            try:
                report = build_report(fields)
                # The id chosen here, and a creation time taken from it, make
                # a resent row the same signed report: a node that stored it
                # answers with its stored receipt (import_run.UNCONFIRMED).
                report.report_id = report_id
                report.created_at.FromDatetime(uuid7_time(report_id))
                request.reports.append(report)
                sent.append(i)
            except RowError as exc:
                results[i] = {"outcome": "ERROR", "error": str(exc)}
        if sent:
            for i, answer in zip(sent, _submit_many(stub, target, request), strict=True):
                results[i] = answer
        return [r for r in results if r is not None]

    return submit


def _submit_many(
    stub: pb_grpc.HotlineServiceStub, target: Target, request: pb.SubmitReportsRequest
) -> list[dict[str, Any]]:
    """One SubmitReports call: each report's result columns, in order."""
    try:
        reply = stub.SubmitReports(request, timeout=BATCH_DEADLINE, metadata=target.metadata)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise ImportStoppedError(rpc_failure(exc, target).message) from exc
        # The whole call was refused (e.g. too large): every row says why.
        return [{"outcome": "ERROR", "error": f"{exc.code().name}: {exc.details()}"}] * len(
            request.reports
        )
    return [_result_columns(result) for result in reply.results]


def _result_columns(result: pb.SubmitReportsResult) -> dict[str, Any]:
    if result.HasField("refusal"):
        where = f" ({result.refusal.field})" if result.refusal.field else ""
        return {
            "outcome": "ERROR",
            "error": f"{result.refusal.reason}{where}: {result.refusal.detail}",
        }
    receipt = result.receipt
    rejected = receipt.outcome == receipt_pb2.OUTCOME_REJECTED
    return {
        "outcome": _outcome(receipt),
        "report_id": receipt.item_id,
        "case_id": receipt.case_id,
        "forwarded_to": receipt.forwarded_to,
        "error": receipt.detail if rejected else "",
    }
