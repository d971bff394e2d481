"""``hfed stats``: takedown statistics of the cases this hotline is responsible for."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import grpc

from federation.cli.connect import DEADLINE, channel, node_options, resolve, rpc_failure
from federation.cli.output import FORMAT_OPTION, Format, emit
from federation.cli.protos import timestamp
from federation.cli.times import check_window, window_options
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import status_pb2


def _hours(duration: timedelta | None) -> float | None:
    """Hours to one decimal, a number in every format (None: no such figure)."""
    return None if duration is None else round(duration.total_seconds() / 3600, 1)


def _status_key(value: int) -> str:
    return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_").lower()  # type: ignore[arg-type]


def reporter_figures(reply: pb.ReporterStats) -> list[dict[str, Any]]:
    """The reporter's side: the reports we sent, by latest status, and how
    long their takedowns took (from sending to CONTENT_REMOVED)."""
    removed = reply.removed_count
    median = reply.takedown_median.ToTimedelta() if removed else None
    p90 = reply.takedown_p90.ToTimedelta() if removed else None
    share = round(reply.removed_within_72h_share, 3) if removed else None
    rows: list[dict[str, Any]] = [
        {"section": "our reports", "key": "reports sent", "value": reply.report_count},
        {"section": "our reports", "key": "removed", "value": removed},
        {"section": "our reports", "key": "median hours to removal", "value": _hours(median)},
        {"section": "our reports", "key": "p90 hours to removal", "value": _hours(p90)},
        {"section": "our reports", "key": "share removed within 72 h", "value": share},
        {"section": "our reports", "key": "overdue", "value": reply.overdue_count},
    ]
    rows += [
        {
            "section": "our reports by status",
            "key": _status_key(c.status) if c.status else "none",
            "value": c.count,
        }
        for c in reply.counts_by_status
    ]
    return rows


def bucket_label(bucket: pb.TakedownBucket, previous: pb.TakedownBucket | None) -> str:
    """A takedown-time bucket as people say it: '≤ 6 h', '≤ 7 d', or '> 30 d'
    for the open-ended last bucket (shared with the console's plot)."""
    if not bucket.HasField("upper_bound"):
        return "> " + (_span(previous.upper_bound.ToTimedelta()) if previous else "0 h")
    return "≤ " + _span(bucket.upper_bound.ToTimedelta())


def _span(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.0f} d" if hours > 72 else f"{hours:.0f} h"


def distribution(reply: pb.GetStatsResponse) -> list[tuple[str, int]]:
    """(label, removed cases) per bucket of the node's takedown-time histogram."""
    buckets = list(reply.takedown_histogram)
    return [
        (bucket_label(b, buckets[i - 1] if i else None), b.count) for i, b in enumerate(buckets)
    ]


def _figures(reply: pb.GetStatsResponse) -> list[dict[str, Any]]:
    removed = reply.removed_count
    median = reply.takedown_median.ToTimedelta() if removed else None
    p90 = reply.takedown_p90.ToTimedelta() if removed else None
    rows: list[dict[str, Any]] = [
        {"section": "takedown", "key": "removed cases", "value": removed},
        {"section": "takedown", "key": "median hours to removal", "value": _hours(median)},
        {"section": "takedown", "key": "p90 hours to removal", "value": _hours(p90)},
        {
            "section": "takedown",
            "key": "share removed within 72 h",
            "value": round(reply.removed_within_72h_share, 3) if removed else None,
        },
        {"section": "takedown", "key": "open past 72 h", "value": len(reply.open_past_72h)},
    ]
    rows += [
        {"section": "time to removal", "key": label, "value": count}
        for label, count in distribution(reply)
    ]
    rows += [
        {
            "section": "status",
            "key": status_pb2.CaseStatus.Name(c.status).removeprefix("CASE_STATUS_").lower(),
            "value": c.count,
        }
        for c in reply.counts_by_status
    ]
    rows += [
        {"section": "country", "key": c.hosting_country, "value": c.count}
        for c in reply.counts_by_country
    ]
    rows += [
        {
            "section": "open past 72 h",
            "key": o.case_id,
            "value": f"{_hours(o.open_for.ToTimedelta())} h, "
            f"{status_pb2.CaseStatus.Name(o.status).removeprefix('CASE_STATUS_')}, "
            f"{o.hosting_country}",
        }
        for o in reply.open_past_72h
    ]
    return rows + reporter_figures(reply.reporter)


@click.command()
@node_options
@window_options("cases first reported")
@FORMAT_OPTION
def stats(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    since: datetime | None,
    until: datetime | None,
    fmt: Format,
) -> None:
    """Cases by status and country, time to removal (median, p90, share within 72 h),
    and cases still open 72 h after their first report.

    Then the same for the reports this hotline sent (section "our reports":
    by latest status, time from sending to removal, overdue).

    Hours are numbers with one decimal; the share is a fraction (0.95 is 95 %).
    """
    check_window(since, until)
    target = resolve(config_path, devnet_dir, member)
    request = pb.GetStatsRequest(since=timestamp(since), until=timestamp(until))
    with channel(target) as ch:
        try:
            reply = pb_grpc.HotlineServiceStub(ch).GetStats(
                request, timeout=DEADLINE, metadata=target.metadata
            )
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    emit(fmt, ("section", "key", "value"), _figures(reply))
