"""Hosting-country codes as an analyst types them: checked, and mistakes explained.

The node checks only the shape of a code (``core/ids.py: is_country``), on
purpose: a node must not refuse a peer's report because its own ISO table is
older. The clients are where a person types a code, so they check it against
ISO 3166-1 as the maintained ``pycountry`` package carries it, and say what
was probably meant: ``UK`` is GB, ``EL`` (the EU's code) is GR, ``USA`` is
the alpha-3 form of US, ``Germany`` is DE.

Valid are the assigned alpha-2 codes, ``ZZ`` (unknown: the network's fallback
member takes it) and the user-assigned codes that the network's roster gives
to a member (:data:`NETWORK_CODES`). Other user-assigned codes (``XX``, ``QZ``)
mean nothing to the roster and would silently go to the fallback.
"""

from __future__ import annotations

from typing import Any, Final

import click

from federation.core.ids import UNKNOWN_COUNTRY

#: User-assigned ISO 3166-1 codes that the roster uses as jurisdictions: XA
#: is the conformance harness's member (``devnet/create.py``, README
#: "conformance"). tests/unit/test_countries.py checks the devnet roster
#: against this set.
NETWORK_CODES: Final = frozenset({"XA"})

#: Codes that are not ISO 3166-1 alpha-2 but that people use for a country.
COMMON_MISTAKES: Final = {
    "UK": "GB",  # exceptionally reserved for the United Kingdom; GB is assigned
    "EL": "GR",  # the European Union's code for Greece
}


class CountryError(ValueError):
    """A country code that is not usable; the message says what to use."""


def check_country(text: str) -> str:
    """``text`` as an upper-case alpha-2 code the network routes, or
    :class:`CountryError` naming the likely intended code."""
    code = text.strip().upper()
    if code == UNKNOWN_COUNTRY or code in NETWORK_CODES:
        return code
    if len(code) == 2 and code.isascii() and code.isalpha() and _assigned(code):
        return code
    raise CountryError(_explain(text.strip(), code))


def _assigned(code: str) -> bool:
    import pycountry  # loaded on first use: the table is ~0.04 s to read

    return pycountry.countries.get(alpha_2=code) is not None


def _explain(shown: str, code: str) -> str:
    said = f"country {shown[:40]!r}" if shown else "country is empty"
    if not shown:
        return f"{said}: use an ISO 3166-1 alpha-2 code (DE, NL...), or ZZ if unknown"
    withdrawn = _withdrawn(code)
    if withdrawn:
        return f"{said} was withdrawn from ISO 3166-1 ({withdrawn}); use the current code"
    meant = _meant(code, shown)
    if meant:
        return f"{said} is not an ISO 3166-1 alpha-2 code; did you mean {meant}?"
    return (
        f"{said} is not an assigned ISO 3166-1 alpha-2 code; use one (DE, NL...), or ZZ if unknown"
    )


def _withdrawn(code: str) -> str | None:
    import pycountry

    if len(code) != 2 or code in COMMON_MISTAKES:
        return None
    found = pycountry.historic_countries.get(alpha_2=code)
    return None if found is None else str(found.name)


def _meant(code: str, shown: str) -> str | None:
    """The code an analyst probably meant by ``code``, if there is one."""
    import pycountry

    if code in COMMON_MISTAKES:
        return COMMON_MISTAKES[code]
    if len(code) == 3:
        found = pycountry.countries.get(alpha_3=code)
        if found is not None:
            return str(found.alpha_2)
    if len(shown) > 3:
        try:
            return str(pycountry.countries.lookup(shown).alpha_2)
        except LookupError:
            return None
    return None


class CountryType(click.ParamType):  # type: ignore[type-arg]
    """A click parameter type for every option that takes a country."""

    name = "COUNTRY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The checked code, or a usage error with the suggestion."""
        try:
            return check_country(str(value))
        except CountryError as exc:
            self.fail(str(exc), param, ctx)


COUNTRY: Final = CountryType()
