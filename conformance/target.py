"""The implementation under test, as the harness sees it: a target file.

A target file (TOML or JSON, same structure; docs/conformance.md) tells the
harness everything it needs about one node and the network around it, so
that a node written in any language can be checked without our devnet:

``[node]``      the node under test: ``member_id``, ``endpoint``, ``ca_cert``
                (the network CA), optionally ``ca_key`` (to mint a certificate
                naming no member, TLS-003).
``[harness]``   the harness's own member as listed in the node's roster:
                ``member_id``, ``endpoint`` (where the harness serves
                FederationService), ``tls_cert``, ``tls_key``, ``signing_key``.
``[roster]``    how rosters the harness signs reach the node: the network's
                ``root_public_keys`` (hex), ``root_threshold``, ``root_keys``
                (PEM files of at least ``root_threshold`` root private keys),
                optionally ``bootstrap`` (the node's initial roster.bin).
                They are published with FederationService.PublishRoster.
``[operator]``  ``tls_cert``, ``tls_key``: a client certificate with which the
                harness may call the node's HotlineService (SubmitReport, GetCase,
                ListCaseReports).
``[liaison]``   optional: ``member_id``, ``tls_cert``, ``tls_key`` of a police
                liaison of one of the node's jurisdictions.
``[[third_party]]`` optional, repeatable: ``member_id`` and ``signing_key`` of
                another hotline of the roster, for items signed by a third party.

Paths are relative to the file's directory. ``from_manifest`` writes the
same description from a test network manifest (HFP v1 section 9).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.keys import Ed25519Key, KeyFileError
from conformance.network import (
    CONFORMANCE_MEMBER,
    Manifest,
    ManifestError,
    MemberEntry,
    TlsIdentity,
    is_loopback,
)

#: The sections a target file may have.
SECTIONS = frozenset({"node", "harness", "roster", "operator", "liaison", "third_party"})


class TargetError(ManifestError):
    """A target file the harness cannot use; the message says why."""


@dataclass(frozen=True)
class Credentials:
    """A member's TLS client identity (and, for the harness, its signing key)."""

    member_id: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    signing_key: Path | None = None

    def tls(self, ca_pem: bytes) -> TlsIdentity:
        """The TLS identity with the network CA."""
        if self.tls_cert is None or self.tls_key is None:
            raise TargetError(f"no TLS certificate and key given for {self.member_id}")
        return TlsIdentity(ca_pem, self.tls_cert.read_bytes(), self.tls_key.read_bytes())

    def key(self) -> Ed25519Key:
        """The signing key."""
        if self.signing_key is None:
            raise TargetError(f"no signing key given for {self.member_id}")
        try:
            return Ed25519Key.from_file(self.signing_key)
        except (KeyFileError, OSError) as exc:
            raise TargetError(f"{self.member_id}: {exc}") from exc


@dataclass(frozen=True)
class Target:
    """One node under test and what the harness may use to test it."""

    source: str
    member_id: str
    endpoint: str
    ca_cert: Path
    harness: Credentials
    harness_endpoint: str
    root_public_keys: tuple[bytes, ...]
    root_threshold: int
    root_keys: tuple[Path, ...]
    operator: Credentials
    bootstrap_roster: Path | None = None
    ca_key: Path | None = None
    liaison: Credentials | None = None
    third_parties: tuple[Credentials, ...] = ()

    def ca_pem(self) -> bytes:
        """The network CA certificate."""
        return self.ca_cert.read_bytes()

    def harness_tls(self) -> TlsIdentity:
        """The harness member's TLS identity."""
        return self.harness.tls(self.ca_pem())

    def operator_tls(self) -> TlsIdentity:
        """The operator's TLS identity (HotlineService of the node)."""
        return self.operator.tls(self.ca_pem())

    def load_root_keys(self) -> list[Ed25519Key]:
        """The root private keys, in the order of ``root_public_keys``."""
        by_public = {}
        for path in self.root_keys:
            try:
                key = Ed25519Key.from_file(path)
            except (KeyFileError, OSError) as exc:
                raise TargetError(str(exc)) from exc
            by_public[key.public_key] = key
        found = [by_public[k] for k in self.root_public_keys if k in by_public]
        if len(found) < self.root_threshold:
            raise TargetError(
                f"{len(found)} root private keys match root_public_keys; "
                f"the threshold is {self.root_threshold}"
            )
        return found

    def third_party(self, member_id: str) -> Credentials | None:
        """The third party's credentials, if the target file gives them."""
        return next((c for c in self.third_parties if c.member_id == member_id), None)

    @classmethod
    def load(cls, path: Path) -> Target:
        """Read a TOML (``.toml``) or JSON target file."""
        try:
            text = path.read_text()
            raw = tomllib.loads(text) if path.suffix != ".json" else json.loads(text)
        except (OSError, ValueError) as exc:
            raise TargetError(f"{path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise TargetError(f"{path}: not a table")
        return parse_target(raw, path.resolve().parent, str(path))

    @classmethod
    def from_manifest(cls, manifest: Manifest, member_id: str | None = None) -> Target:
        """The target description of a devnet node (one way to write a target file)."""
        return parse_target(manifest_table(manifest, member_id), manifest.directory, "manifest")


def manifest_table(manifest: Manifest, member_id: str | None = None) -> dict[str, Any]:
    """A target file's table for one node of a test network (paths relative to it)."""
    target_id = member_id or manifest.default_target()
    node = manifest.member(target_id)
    if not node.endpoint or not node.runs_node:
        raise TargetError(f"target {target_id} runs no node in this network")
    me = manifest.member(CONFORMANCE_MEMBER)
    table: dict[str, Any] = {
        "node": {"member_id": target_id, "endpoint": node.endpoint, "ca_cert": manifest.ca_cert},
        "harness": {
            "member_id": me.member_id,
            "endpoint": me.endpoint,
            "tls_cert": me.tls_cert,
            "tls_key": me.tls_key,
            "signing_key": me.signing_key,
        },
        "roster": {
            "root_public_keys": [k.hex() for k in manifest.root_public_keys],
            "root_threshold": manifest.root_threshold,
            "root_keys": sorted(
                str(p.relative_to(manifest.directory))
                for p in (manifest.directory / "root").glob("root-*.pem")
            ),
            "bootstrap": manifest.roster,
        },
        "operator": {"tls_cert": node.tls_cert, "tls_key": node.tls_key},
        "third_party": [
            {"member_id": m.member_id, "signing_key": m.signing_key}
            for m in manifest.members.values()
            if m.role == "ROLE_HOTLINE"
            and m.member_id not in (target_id, CONFORMANCE_MEMBER)
            and m.signing_key
        ],
    }
    if (manifest.directory / "ca.key").exists():
        table["node"]["ca_key"] = "ca.key"
    liaison = _liaison_for(manifest, node.jurisdictions)
    if liaison is not None:
        table["liaison"] = {
            "member_id": liaison.member_id,
            "tls_cert": liaison.tls_cert,
            "tls_key": liaison.tls_key,
        }
    return table


def _liaison_for(manifest: Manifest, jurisdictions: tuple[str, ...]) -> MemberEntry | None:
    """A liaison of one of the node's jurisdictions (else any liaison, else None)."""
    liaisons = [m for m in manifest.members.values() if m.role == "ROLE_LIAISON" and m.tls_cert]
    ours = [m for m in liaisons if set(m.jurisdictions) & set(jurisdictions)]
    chosen = ours or liaisons
    return chosen[0] if chosen else None


def _section(raw: dict[str, Any], name: str, where: str, *, required: bool = True) -> Any:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise TargetError(f"{where}: [{name}] is missing or not a table")
    return value


def _text(table: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = table.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise TargetError(f"{where}: {key} must be a non-empty string")
    return value


class _Reader:
    """Resolves a target table's paths against its directory."""

    def __init__(self, base: Path, where: str) -> None:
        self.base = base
        self.where = where

    def path(self, table: dict[str, Any], key: str, *, required: bool = True) -> Path | None:
        value = _text(table, key, self.where, required=required)
        if not value:
            return None
        path = (self.base / value).resolve()
        if not path.is_file():
            raise TargetError(f"{self.where}: {key} = {value!r}: no such file")
        return path

    def credentials(self, table: dict[str, Any], member_id: str, *, signing: bool) -> Credentials:
        return Credentials(
            member_id,
            self.path(table, "tls_cert"),
            self.path(table, "tls_key"),
            self.path(table, "signing_key") if signing else None,
        )

    def endpoint(self, table: dict[str, Any], section: str) -> str:
        endpoint = _text(table, "endpoint", self.where)
        if not is_loopback(endpoint):
            raise TargetError(
                f"{self.where}: [{section}] endpoint {endpoint} is not on loopback; "
                "the harness only runs against local test networks"
            )
        return endpoint


def _roots(
    roster: dict[str, Any], reader: _Reader
) -> tuple[tuple[bytes, ...], int, tuple[Path, ...]]:
    try:
        publics = tuple(bytes.fromhex(k) for k in roster["root_public_keys"])
        threshold = int(roster["root_threshold"])
        files = tuple(
            p for p in (reader.path({"k": k}, "k") for k in roster.get("root_keys", [])) if p
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TargetError(f"{reader.where}: bad [roster] root keys or threshold: {exc}") from exc
    if threshold < 1 or len(publics) < threshold:
        raise TargetError(f"{reader.where}: root_threshold {threshold} with {len(publics)} roots")
    return publics, threshold, files


def parse_target(raw: dict[str, Any], base: Path, where: str) -> Target:
    """A Target from a parsed target file (``base``: the directory paths are relative to)."""
    unknown = set(raw) - SECTIONS
    if unknown:
        raise TargetError(f"{where}: unknown sections {sorted(unknown)}")
    reader = _Reader(base, where)
    node = _section(raw, "node", where)
    harness = _section(raw, "harness", where)
    roster = _section(raw, "roster", where)
    operator = _section(raw, "operator", where)
    liaison = _section(raw, "liaison", where, required=False)
    publics, threshold, root_files = _roots(roster, reader)
    ca_cert = reader.path(node, "ca_cert")
    assert ca_cert is not None
    node_id = _text(node, "member_id", where)
    return Target(
        source=where,
        member_id=node_id,
        endpoint=reader.endpoint(node, "node"),
        ca_cert=ca_cert,
        harness=reader.credentials(harness, _text(harness, "member_id", where), signing=True),
        harness_endpoint=reader.endpoint(harness, "harness"),
        root_public_keys=publics,
        root_threshold=threshold,
        root_keys=root_files,
        operator=reader.credentials(operator, node_id, signing=False),
        bootstrap_roster=reader.path(roster, "bootstrap", required=False),
        ca_key=reader.path(node, "ca_key", required=False),
        liaison=None
        if liaison is None
        else reader.credentials(liaison, _text(liaison, "member_id", where), signing=False),
        third_parties=tuple(
            Credentials(_text(t, "member_id", where), signing_key=reader.path(t, "signing_key"))
            for t in raw.get("third_party", [])
            if isinstance(t, dict)
        ),
    )
