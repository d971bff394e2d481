"""``hfed`` against a running three-hotline network: every ``--format json``
parses, ``case show`` is complete, lists say when they are cut short, the
environment names the node, and exit codes mean the same everywhere.

DK = hotline-dk reports; NL = hotline-nl is responsible for NL; DE =
hotline-de takes a case MOVED to Germany; police-dk is DK's liaison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click
import pytest

from federation.cli.main import cli
from federation.devnet import processes
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import report_pb2, status_pb2
from tests.support.hotline import get_case, hotline, record
from tests.support.net import DEADLINE, Network, running_network, small_members

DK, NL, DE = "hotline-dk", "hotline-nl", "hotline-de"
S = status_pb2
HFED = [sys.executable, "-m", "federation.cli.main"]
SHA256 = bytes(range(32))


@dataclass(frozen=True)
class Story:
    """What the fixture made: a forwarded case at NL, one moved to DE, a held one at DK."""

    net: Network
    nl_case: str
    nl_report: str
    moved_report: str
    held_case: str


def _submit(net: Network, at: str, url: str, country: str, **fields: Any) -> str:
    report = report_pb2.Report(url=url, hosting_country=country, **fields)
    with hotline(net, at) as stub:
        receipt = stub.SubmitReport(pb.SubmitReportRequest(report=report), timeout=DEADLINE)
    return receipt.receipt.item_id


def _wait_case(net: Network, at: str, report_id: str, history: int = 1) -> Any:
    deadline = time.monotonic() + 30
    while True:
        try:
            case = get_case(net, at, report_id=report_id)
            if len(case.history) >= history:
                return case
        except Exception:  # not arrived yet
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{report_id} has no {history} updates at {at}")
        time.sleep(0.2)


def hfed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run hfed; the environment without any HFED_ variable unless given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HFED_")}
    return subprocess.run(
        [*HFED, *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**base, **(env or {})},
    )


def at(story: Story, member: str) -> list[str]:
    return ["--devnet", str(story.net.directory), "--member", member]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    members = small_members(DK, NL, DE)
    with running_network(tmp_path_factory.mktemp("cli") / "net", members) as net:
        tag = os.urandom(4).hex()
        nl_report = _submit(
            net,
            DK,
            f"https://img.example.test/{tag}.jpg",
            "NL",
            hashes=[
                report_pb2.ContentHash(algorithm=report_pb2.HASH_ALGORITHM_SHA256, value=SHA256)
            ],
            media_type=report_pb2.MEDIA_TYPE_IMAGE,
            hosting_ip="192.0.2.7",
            hosting_asn=64500,
            analyst_note="seen on the front page",
        )
        nl_case = _wait_case(net, NL, nl_report).case_id
        _wait_case(net, DK, nl_report)
        moved_report = _submit(net, DK, f"https://moving.example.test/{tag}", "NL")
        moved_case = _wait_case(net, NL, moved_report).case_id
        record(net, NL, moved_case, S.CASE_STATUS_MOVED, new_hosting_country="DE")
        _wait_case(net, DK, moved_report, history=3)
        held = _submit(net, DK, f"https://held.example.test/{tag}", "DK")
        held_case = _wait_case(net, DK, held).case_id
        _wait_case(net, DK, _submit(net, DK, f"https://other.example.test/{tag}", "DK"))
        yield Story(net, nl_case, nl_report, moved_report, held_case)


def _profile(story: Story) -> str:
    return str(story.net.directory / "members" / "police-dk" / "liaison.toml")


def test_case_show_text_has_every_detail(story: Story) -> None:
    profile = _profile(story)
    acked = hfed("liaison", "ack", story.held_case, "--reference", "DK-42", "--profile", profile)
    assert acked.returncode == 0, acked.stderr
    held = hfed(
        "liaison", "hold", story.held_case, "--reason", "undercover", "--until", "2d",
        "--profile", profile,
    )  # fmt: skip
    assert held.returncode == 0, held.stderr
    shown = hfed("case", "show", story.held_case, *at(story, DK))
    assert shown.returncode == 0, shown.stderr
    assert "acknowledged" in shown.stdout and "DK-42" in shown.stdout
    assert "ACTIVE until" in shown.stdout and "undercover" in shown.stdout
    forwarded = hfed("case", "show", story.nl_case, *at(story, NL)).stdout
    for detail in ("sha256:" + SHA256.hex(), "IMAGE", "192.0.2.7", "AS64500", "front page"):
        assert detail in forwarded


def test_reporter_sees_the_moved_case_in_its_new_country(story: Story) -> None:
    case = get_case(story.net, DK, report_id=story.moved_report)
    assert case.responsible_member_id == DE and case.hosting_country == "DE"
    shown = hfed("case", "show", story.moved_report, *at(story, DK))
    assert shown.returncode == 0, shown.stderr
    assert "hosting country  DE" in shown.stdout
    history = shown.stdout.split("history (")[1].splitlines()[2:]
    before, after = [line for line in history if "(before move)" in line], history[2:]
    assert [line.split()[4] for line in before] == ["RECEIVED", "MOVED"]
    assert case.case_id in after[0] and "RECEIVED" in after[0]
    assert "moved to DE" in before[1]


def test_case_status_takes_a_report_id(story: Story) -> None:
    done = hfed("case", "status", story.nl_report, "assessed_illegal", *at(story, NL))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"case {story.nl_case}: ASSESSED_ILLEGAL")


def test_case_list_says_when_it_is_cut_short(story: Story) -> None:
    cut = hfed("case", "list", "--limit", "1", "--format", "json", *at(story, NL))
    assert cut.returncode == 0 and len(json.loads(cut.stdout)) == 1
    assert "more match" in cut.stderr and "--limit" in cut.stderr
    whole = hfed("case", "list", "--limit", "1000", *at(story, NL))
    assert whole.returncode == 0 and whole.stderr == ""
    assert whole.stdout.splitlines()[1].split()[5].endswith("Z")  # CREATED, ISO 8601 UTC


def test_case_list_filters_overdue_and_times(story: Story) -> None:
    every = json.loads(hfed("case", "list", "--format", "json", *at(story, NL)).stdout)
    assert every and all(row["overdue"] is False for row in every)
    overdue = hfed("case", "list", "--overdue", "--format", "json", *at(story, NL))
    assert overdue.returncode == 0 and json.loads(overdue.stdout) == []
    recent = hfed("case", "list", "--since", "1h", "--format", "json", *at(story, NL))
    assert len(json.loads(recent.stdout)) == len(every)
    future = hfed("case", "list", "--since", "2999-01-01", "--format", "json", *at(story, NL))
    assert json.loads(future.stdout) == []


def test_environment_names_the_network_and_member(story: Story) -> None:
    env = {"HFED_DEVNET": str(story.net.directory), "HFED_MEMBER": NL}
    listed = hfed("case", "list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert story.nl_case in {row["case_id"] for row in json.loads(listed.stdout)}
    status = hfed("devnet", "status", env={"HFED_DEVNET": str(story.net.directory)})
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("SERVING") == 3


def test_bounded_lists_say_when_cut_short(story: Story) -> None:
    profile = ["--profile", _profile(story)]
    hfed("liaison", "list", *profile)  # an audited call, whatever ran before
    for args in (["audit", *at(story, DK)], ["liaison", "list", *profile]):
        cut = hfed(*args, "--limit", "1", "--format", "json")
        assert cut.returncode == 0, cut.stderr
        assert len(json.loads(cut.stdout)) == 1
        assert "more match: raise --limit" in cut.stderr, args
        whole = hfed(*args, "--limit", "1000")
        assert "more match" not in whole.stderr


# --- every --format json ------------------------------------------------------------


def _json_commands() -> dict[str, click.Command]:
    """Every command of the click tree with a --format choice that offers json."""
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                child = command.get_command(context, name)
                assert child is not None
                walk(child, (*path, name))
            return
        for param in command.params:
            if "--format" in param.opts and "json" in getattr(param.type, "choices", ()):
                found[" ".join(path)] = command

    walk(cli, ())
    return found


def _json_arguments(story: Story) -> dict[str, list[str]]:
    """What each command needs besides --format json (a new command must be added)."""
    profile = ["--profile", _profile(story)]
    return {
        "audit": at(story, DK),
        "case list": at(story, NL),
        "case show": [story.nl_case, *at(story, NL)],
        "liaison list": profile,
        "liaison reports": [story.held_case, *profile],
        "liaison watch": ["--idle-exit", "2", *profile],
        "outbox rejected": at(story, DK),
        "outbox status": at(story, DK),
        "roster show": [str(story.net.directory / "roster.bin")],
        "stats": ["--since", "7d", *at(story, NL)],
        "report list": ["--since", "7d", *at(story, DK)],
    }


def _numbers_are_numbers(value: Any, where: str) -> None:
    """No figure written as a string ("0.0", "100%"); ids and keys may be digits."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _numbers_are_numbers(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _numbers_are_numbers(inner, f"{where}[{index}]")
    elif isinstance(value, str) and not any(k in where for k in ("id", "key", "hash", "value")):
        stripped = value.removesuffix("%")
        assert not stripped.replace(".", "", 1).isdigit(), f"{where} = {value!r}"


def test_every_json_format_is_valid_json(story: Story) -> None:
    commands = _json_commands()
    arguments = _json_arguments(story)
    assert set(commands) <= set(arguments), "give the new --format json commands arguments"
    for name in sorted(commands):
        result = hfed(*name.split(), "--format", "json", *arguments[name])
        assert result.returncode == 0, f"{name}: {result.stderr}"
        lines = result.stdout.splitlines()
        # `liaison watch` writes one JSON object a line; every other one document.
        documents = [json.loads(line) for line in lines] if name == "liaison watch" else [
            json.loads(result.stdout)
        ]  # fmt: skip
        for document in documents:
            _numbers_are_numbers(document, name)
    stats = json.loads(hfed("stats", "--format", "json", *at(story, NL)).stdout)
    share = next(row for row in stats if row["key"] == "share removed within 72 h")
    assert share["value"] is None or isinstance(share["value"], float)


# --- exit codes ---------------------------------------------------------------------


def test_exit_codes(story: Story) -> None:
    unknown = "01900000-0000-7000-8000-000000000000"
    samples = {
        0: [
            ["--help"],
            ["case", "list", *at(story, NL)],
            ["stats", "--since", "7d", *at(story, NL)],
        ],
        1: [
            ["case", "show", unknown, *at(story, NL)],
            ["devnet", "status", str(story.net.directory / "none")],
        ],
        2: [
            ["case", "show", "not-an-id", *at(story, NL)],
            ["case", "list", "--status", "bogus", *at(story, NL)],
            ["stats", "--since", "yesterday", *at(story, NL)],
            ["stats", "--since", "1d", "--until", "2d", *at(story, NL)],
            ["case", "list", "--since", "1h", "--until", "2h", *at(story, NL)],
            ["case", "list", "--devnet", str(story.net.directory)],
            ["no-such-command"],
        ],
    }  # fmt: skip
    for code, commands in samples.items():
        for args in commands:
            result = hfed(*args)
            assert result.returncode == code, f"{args}: {result.returncode} {result.stderr}"


def test_devnet_status_fails_when_a_node_is_down(story: Story) -> None:
    processes.down(story.net.directory, only=(DE,))
    status = hfed("devnet", "status", str(story.net.directory))
    assert status.returncode == 1
    assert "1 of 3 nodes down: hotline-de" in status.stderr
