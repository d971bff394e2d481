"""``hfed report import`` against real nodes: a file of every class with each
row's outcome asserted, and 10,000 rows interrupted (SIGINT) then resumed.

A = hotline-dk (the importing node), B = hotline-nl; the secretariat takes ZZ.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import Network, running_network

A, B, FALLBACK = "hotline-dk", "hotline-nl", "secretariat"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("import") / "net") as network:
        yield network


def hfed_import(net: Network, *args: str) -> list[str]:
    return net.hfed_argv(A, "report import", *args)


def results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def url(tag: str) -> str:
    return f"https://import.example.net/{tag}/{os.urandom(6).hex()}"


def test_every_class_of_row_at_real_nodes(net: Network, tmp_path: Path) -> None:
    sha = "sha256:" + "ab" * 32
    rows = [
        # (line text, expected outcome, forwarded_to or error fragment)
        (f"{url('dk')};DK;{sha};64500;Grüße", "ACCEPTED", ""),
        (f"{url('nl')};nl;;AS64500;", "FORWARDED", B),
        (f"{url('zz')};ZZ;;;", "FORWARDED", FALLBACK),
        (f"{url('uk')};UK;;;", "ERROR", "did you mean GB?"),
        (f'{url("quote")};DK;;;"never closed', "ERROR", "line 6: a quoted field opened here"),
        (f"{url('after')};DK;;;the row after the broken one", "ACCEPTED", ""),
        (f"{url('huge')};DK;;;{'n' * 150_000}", "ERROR", "analyst_note is 150,000 characters"),
        ('"data:image/png;base64,AA";DK;;;', "ERROR", "data: URLs embed media"),
        ("http://a.example/;DK;;;;", "ERROR", "line 10: 6 fields but the header names 5"),
    ]
    lines = ["URL ; Country ; Hashes ; Hosting ASN ; Analyst Note"] + [r[0] for r in rows]
    source = tmp_path / "mixed.csv"
    source.write_bytes(("\r".join(lines) + "\r").encode("cp1252"))  # Excel for Mac, Windows-1252
    done = subprocess.run(
        hfed_import(net, str(source)), capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr
    assert "encoding cp1252 (not valid UTF-8), delimiter semicolon" in done.stderr
    assert "4 submitted, 5 failed" in done.stdout
    got = results(tmp_path / "mixed.results.csv")
    assert [int(r["row"]) for r in got] == list(range(2, 2 + len(rows)))
    for row, (_, outcome, detail) in zip(got, rows, strict=True):
        assert row["outcome"] == outcome, row
        if outcome == "FORWARDED":
            assert row["forwarded_to"] == detail
        elif outcome in ("ERROR", "REJECTED"):
            assert detail in row["error"]
        else:
            assert row["case_id"] and row["report_id"]


def _lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_ten_thousand_rows_interrupted_then_resumed(net: Network, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "country", "hashes"])
        for n in range(10_000):
            writer.writerow([url(f"bulk{n}"), "NL" if n % 10 == 0 else "DK", ""])
    out = tmp_path / "big.results.csv"
    first = subprocess.Popen(
        hfed_import(net, str(source)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while _lines_in(out) < 1_000 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert first.returncode == 1 and f"go on with: --resume {out}" in stderr, stderr
    written = results(out)
    # The chunk in flight when SIGINT came is written as UNCONFIRMED, with the
    # report ids it carried; the others were answered.
    in_flight = [r for r in written if r["outcome"] == "UNCONFIRMED"]
    assert len(in_flight) <= 500 and all(r["report_id"] for r in in_flight)
    done_first = len(written) - len(in_flight)
    assert 1_000 <= done_first < 10_000

    second = subprocess.run(
        hfed_import(net, "--resume", str(out), str(source)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert f"{done_first} skipped (submitted before)" in second.stdout
    assert "rows/s" in second.stderr and "ETA" in second.stderr
    latest = {r["row_key"]: r for r in results(out)}
    assert len(latest) == 10_000
    assert sorted(int(r["row"]) for r in latest.values()) == list(range(2, 10_002))
    for row in latest.values():
        n = int(row["url"].split("/bulk")[1].split("/")[0])
        # A row the node stored just as SIGINT came is sent again under the same
        # report id: the node answers with its stored receipt, never DUPLICATE.
        assert row["outcome"] == ("FORWARDED" if n % 10 == 0 else "ACCEPTED"), row
    resent = {r["row_key"]: r["report_id"] for r in in_flight}
    assert all(latest[key]["report_id"] == rid for key, rid in resent.items())
