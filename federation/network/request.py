"""``request.toml``: what a party asks the secretariat to put in the roster.

A request carries only public material: the member's id, name, role,
jurisdictions and endpoint, and for members that sign, the public half of
their signing key. The TLS key's CSR travels beside it as ``tls.csr``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from crypto.errors import KeyFormatError
from crypto.keys import key_id_for, public_key_from_hex
from federation.core.ids import MEMBER_ID_RE, is_country
from federation.network.tomlfile import dumps, read_toml, validate

REQUEST_FILE = "request.toml"
CSR_FILE = "tls.csr"
RoleName = Literal["hotline", "liaison", "secretariat"]


class MembershipRequest(BaseModel):
    """A validated membership request (or a request to add a new key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member_id: str
    display_name: str = ""
    role: RoleName
    jurisdictions: tuple[str, ...] = ()
    endpoint: str = ""
    signing_public_key: str = ""
    key_id: str = ""

    @field_validator("member_id")
    @classmethod
    def _member_id(cls, value: str) -> str:
        if not MEMBER_ID_RE.fullmatch(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9-]{1,62}$")
        return value

    @field_validator("jurisdictions")
    @classmethod
    def _countries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in value if not is_country(c)]
        if bad:
            raise ValueError(f"not ISO 3166-1 alpha-2 country codes: {bad}")
        return value

    @model_validator(mode="after")
    def _keys_fit_role(self) -> MembershipRequest:
        if self.role == "liaison":
            if self.signing_public_key or self.key_id:
                raise ValueError("a police liaison has no signing key")
            return self
        if not self.endpoint:
            raise ValueError(f"a {self.role} needs an endpoint (host:port)")
        try:
            public_key = public_key_from_hex(self.signing_public_key)
        except KeyFormatError as exc:
            raise ValueError(f"signing_public_key: {exc}") from exc
        if key_id_for(public_key) != self.key_id:
            raise ValueError("key_id is not the id of signing_public_key")
        return self

    @classmethod
    def load(cls, path: Path) -> MembershipRequest:
        """Read and check a request file."""
        return validate(cls, read_toml(path), path)

    def save(self, path: Path) -> None:
        """Write the request (no secret is ever part of it)."""
        table = self.model_dump()
        table["jurisdictions"] = list(self.jurisdictions)
        for empty in ("signing_public_key", "key_id"):
            if not table[empty]:
                del table[empty]
        path.write_text(
            dumps(table, "Membership request: send it with tls.csr to the secretariat.")
        )
