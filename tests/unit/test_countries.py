"""Country codes are checked against ISO 3166-1 wherever a command takes one."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conformance import __doc__ as conformance_doc
from federation.cli.countries import NETWORK_CODES, CountryError, check_country
from federation.cli.main import cli
from federation.devnet.create import DEFAULT_MEMBERS


@pytest.mark.parametrize(
    ("text", "code"),
    [("de", "DE"), (" NL ", "NL"), ("gb", "GB"), ("ZZ", "ZZ"), ("zz", "ZZ"), ("XA", "XA")],
)
def test_valid(text: str, code: str) -> None:
    assert check_country(text) == code


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("UK", "did you mean GB?"),
        ("el", "did you mean GR?"),
        ("usa", "did you mean US?"),
        ("DEU", "did you mean DE?"),
        ("Germany", "did you mean DE?"),
        ("XX", "not an assigned ISO 3166-1 alpha-2 code"),
        ("QZ", "not an assigned"),
        ("YU", "was withdrawn from ISO 3166-1"),
        ("", "country is empty"),
        ("D", "not an assigned"),
        ("Ü1", "not an assigned"),
        ("x" * 10_000, "'" + "x" * 40 + "'"),
    ],
)
def test_refused_with_the_likely_code(text: str, hint: str) -> None:
    with pytest.raises(CountryError) as caught:
        check_country(text)
    assert hint in str(caught.value)


def test_user_assigned_codes_are_those_the_roster_uses() -> None:
    """XA..XZ, QM..QZ and AA are user-assigned: valid only when a member has one."""
    user_assigned = {
        code
        for member in DEFAULT_MEMBERS
        for code in member.jurisdictions
        if code == "AA" or code[0] == "X" or ("QM" <= code <= "QZ")
    }
    assert user_assigned == set(NETWORK_CODES)
    assert conformance_doc is not None and "XA" in conformance_doc


@pytest.mark.parametrize(
    "args",
    [
        ["case", "list", "--country", "usa"],
        ["report", "submit", "--url", "http://a.example/", "--country", "usa"],
        ["case", "status", "x", "moved", "--new-country", "usa"],
    ],
)
def test_every_country_option_checks(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "did you mean US?" in result.output
