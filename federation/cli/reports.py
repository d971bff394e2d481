"""``hfed report``: submit one report, or import many from a CSV file."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import grpc

from federation.cli.connect import DEADLINE, Target, channel, node_options, resolve, rpc_failure
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import receipt_pb2, report_pb2

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
CSV_COLUMNS = (
    "url",
    "country",
    "hashes",
    "media_type",
    "classification",
    "hosting_ip",
    "hosting_asn",
    "site_type",
    "victim_age_group",
    "analyst_note",
)
RESULT_COLUMNS = ("row", "url", "outcome", "report_id", "case_id", "forwarded_to", "error")


class RowError(ValueError):
    """A report field that cannot be used; the message names it."""


def parse_hash(text: str) -> report_pb2.ContentHash:
    """'ALGORITHM:HEX' → ContentHash (e.g. sha256:9f86d0...)."""
    name, sep, hexdigits = text.strip().partition(":")
    if not sep or name.lower() not in HASH_NAMES:
        raise RowError(
            f"hash {text!r}: use ALGORITHM:HEX with ALGORITHM in {', '.join(HASH_NAMES)}"
        )
    try:
        value = bytes.fromhex(hexdigits)
    except ValueError:
        raise RowError(f"hash {text!r}: the value is not hexadecimal") from None
    return report_pb2.ContentHash(algorithm=HASH_NAMES[name.lower()], value=value)


def _choice(table: Mapping[str, int], value: str, field: str) -> int:
    if not value:
        return 0
    try:
        return table[value.strip().lower()]
    except KeyError:
        raise RowError(f"{field} {value!r}: use one of {', '.join(table)}") from None


def build_report(fields: Mapping[str, str]) -> report_pb2.Report:
    """A Report from textual fields (CLI options or a CSV row)."""
    url, country = fields.get("url", "").strip(), fields.get("country", "").strip().upper()
    if not url or not country:
        raise RowError("url and country are required")
    asn = fields.get("hosting_asn", "").strip()
    if asn and not asn.isdigit():
        raise RowError(f"hosting_asn {asn!r} is not a number")
    hashes = [parse_hash(h) for h in fields.get("hashes", "").replace(";", " ").split() if h]
    return report_pb2.Report(
        url=url,
        hosting_country=country,
        hashes=hashes,
        media_type=_choice(MEDIA, fields.get("media_type", ""), "media_type"),  # type: ignore[arg-type]
        classification=_choice(CLASSIFICATION, fields.get("classification", ""), "classification"),  # type: ignore[arg-type]
        hosting_ip=fields.get("hosting_ip", "").strip(),
        hosting_asn=int(asn or 0),
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


@click.group()
def report() -> None:
    """Submit reports to this hotline's node."""


@report.command()
@node_options
@click.option("--url", required=True, help="The reported URL (never fetched).")
@click.option("--country", required=True, help="Hosting country, ISO alpha-2, or ZZ if unknown.")
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
        click.echo(f"  forwarded   to {receipt.forwarded_to} (responsible for {country.upper()})")
    if receipt.detail:
        click.echo(f"  detail      {receipt.detail}")


@dataclass
class _Tally:
    submitted: int = 0
    failed: int = 0


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"url", "country"} - set(reader.fieldnames or ())
        if missing:
            raise click.ClickException(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                f"columns: {', '.join(CSV_COLUMNS)}"
            )
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            yield number, {k.strip().lower(): (v or "") for k, v in row.items() if k}


def _count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


@report.command("import")
@node_options
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Per-row result CSV (default: CSV_FILE with .results.csv).",
)
def import_csv(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    csv_file: Path,
    results: Path | None,
) -> None:
    """Submit every row of CSV_FILE; a bad row is reported, not fatal.

    Columns (header row required; only url and country are mandatory):
    url, country, hashes (ALG:HEX separated by spaces or ';'), media_type,
    classification, hosting_ip, hosting_asn, site_type, victim_age_group,
    analyst_note.
    """
    target = resolve(config_path, devnet_dir, member)
    results = results or csv_file.with_suffix(".results.csv")
    tally = _Tally()
    total = _count_rows(csv_file)
    with channel(target) as ch, results.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        stub = pb_grpc.HotlineServiceStub(ch)
        # Progress goes to stderr so stdout stays clean for the summary.
        with click.progressbar(
            _rows(csv_file), length=total, label="submitting", show_pos=True, file=sys.stderr
        ) as rows:
            for number, fields in rows:
                writer.writerow(_import_row(stub, target, number, fields, tally))
    click.echo(f"{tally.submitted} submitted, {tally.failed} failed; per-row results in {results}")
    if tally.failed:
        raise SystemExit(1)


def _import_row(
    stub: pb_grpc.HotlineServiceStub,
    target: Target,
    number: int,
    fields: dict[str, str],
    tally: _Tally,
) -> dict[str, object]:
    result: dict[str, object] = {"row": number, "url": fields.get("url", "")}
    try:
        receipt = _submit(stub, target, build_report(fields))
    except RowError as exc:
        tally.failed += 1
        return {**result, "outcome": "ERROR", "error": str(exc)}
    except grpc.RpcError as exc:
        if exc.code() is grpc.StatusCode.UNAVAILABLE:
            raise rpc_failure(exc, target) from exc
        tally.failed += 1
        return {**result, "outcome": "ERROR", "error": f"{exc.code().name}: {exc.details()}"}
    tally.submitted += 1
    return {
        **result,
        "outcome": _outcome(receipt),
        "report_id": receipt.item_id,
        "case_id": receipt.case_id,
        "forwarded_to": receipt.forwarded_to,
        "error": receipt.detail if receipt.outcome == receipt_pb2.OUTCOME_REJECTED else "",
    }


def _add_list_command() -> None:
    # `report list` reads what we sent; it lives in its own module.
    from federation.cli.our_reports import list_reports

    report.add_command(list_reports)


_add_list_command()
