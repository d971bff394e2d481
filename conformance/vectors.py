"""Signed test vectors other implementations can reuse.

Two sets come out of the same builders the live cases use:

* the **fixed** set (``write_fixed``): a made-up network whose root and
  member keys derive from fixed labels (``Ed25519Key.from_label``), a fixed
  receiver clock and fixed ids, so every byte is reproducible and nothing
  needs a running network. It also holds DSSE PAE known answers, Ed25519
  signature known answers and threshold-signed roster vectors.
* a **network** set (``write_for_network``): the item vectors re-signed with
  the keys of a given test network (its manifest, its ``roster.bin``), to be
  delivered by its ``conformance`` member to a given node.

File format: see ``conformance-vectors/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.cases import all_cases
from conformance.context import SetupError, build_factory, choose_other_hotline
from conformance.dsse import REPORT_TYPE, ROSTER_TYPE, pae, verify_envelope
from conformance.items import (
    RETIRED_KEY_LABEL,
    REVOKED_KEY_LABEL,
    SECOND_KEY_LABEL,
    ExtraKeys,
    ItemFactory,
    ItemSpec,
    Party,
)
from conformance.keys import Ed25519Key
from conformance.network import CONFORMANCE_MEMBER, Manifest
from conformance.registry import Case
from conformance.rosters import RosterView, root_key_id, sign_roster
from conformance.vectors_manifest import write_manifest
from hfp.v1 import receipt_pb2, roster_pb2

FORMAT = "hfp-conformance-vectors/1"
#: ``pae_hex`` is left out (null) for payloads larger than this; it is derivable.
MAX_PAE_HEX_PAYLOAD = 4096
#: The receiver's clock for the fixed set (CLOCK_SKEW and key windows are relative to it).
FIXED_NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
FIXED_ISSUED = datetime(2025, 1, 1, tzinfo=UTC)
FIXED_EXPIRES = datetime(2125, 1, 1, tzinfo=UTC)
FIXED_URL_PREFIX = "https://vectors.conformance.example"
ROOT_LABELS = ("vectors/root-1", "vectors/root-2", "vectors/root-3")
THRESHOLD = 2
SENDER = "vector-a"
RECEIVER = "vector-b"
THIRD_PARTY = "vector-d"
FALLBACK = "vector-c"


class VectorError(ValueError):
    """Vectors cannot be written (bad network, unknown target)."""


@dataclass(frozen=True)
class VectorMember:
    """A member of the fixed vector network."""

    member_id: str
    role: int
    jurisdictions: tuple[str, ...]
    endpoint: str
    label: str


FIXED_MEMBERS = (
    VectorMember(SENDER, roster_pb2.ROLE_HOTLINE, ("XA",), "127.0.0.1:7101", "vectors/vector-a"),
    VectorMember(RECEIVER, roster_pb2.ROLE_HOTLINE, ("XB",), "127.0.0.1:7102", "vectors/vector-b"),
    VectorMember(FALLBACK, roster_pb2.ROLE_SECRETARIAT, (), "127.0.0.1:7103", "vectors/vector-c"),
    VectorMember(
        THIRD_PARTY, roster_pb2.ROLE_HOTLINE, ("XD",), "127.0.0.1:7104", "vectors/vector-d"
    ),
    VectorMember(
        "vector-e", roster_pb2.ROLE_HOTLINE, ("XE",), "127.0.0.1:7105", "vectors/vector-e"
    ),
    VectorMember("vector-police", roster_pb2.ROLE_LIAISON, ("XB",), "", "vectors/vector-police"),
)


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the fixed network -------------------------------------------------------------------------


def fixed_roots() -> list[Ed25519Key]:
    """The fixed set's three root keys."""
    return [Ed25519Key.from_label(label) for label in ROOT_LABELS]


def fixed_roster(
    *, version: int = 1, issued: datetime = FIXED_ISSUED, expires: datetime = FIXED_EXPIRES
) -> bytes:
    """The fixed network's roster bytes; the sender also holds the three extra keys."""
    extra = ExtraKeys()
    roster = roster_pb2.Roster(version=version, fallback_member_id=FALLBACK)
    roster.issued_at.FromDatetime(issued)
    roster.expires_at.FromDatetime(expires)
    for spec in FIXED_MEMBERS:
        key = Ed25519Key.from_label(spec.label)
        member = roster.members.add(
            member_id=spec.member_id,
            display_name=f"Test vector member {spec.member_id}",
            role=spec.role,
            jurisdictions=list(spec.jurisdictions),
            endpoint=spec.endpoint,
        )
        member.signing_keys.add(key_id=key.key_id, public_key=key.public_key)
        if spec.member_id == SENDER:
            member.signing_keys.add(key_id=extra.second.key_id, public_key=extra.second.public_key)
            member.signing_keys.add(
                key_id=extra.revoked.key_id, public_key=extra.revoked.public_key, revoked=True
            )
            retired = member.signing_keys.add(
                key_id=extra.retired.key_id, public_key=extra.retired.public_key
            )
            retired.not_before.FromDatetime(extra.retired_not_before)
            retired.not_after.FromDatetime(extra.retired_not_after)
    return roster.SerializeToString()


def _fixed_random() -> Callable[[], int]:
    counter = iter(range(1, 1 << 30))

    def draw() -> int:
        digest = hashlib.sha256(f"vectors/random/{next(counter)}".encode()).digest()
        return int.from_bytes(digest[:10], "big") >> 6

    return draw


def fixed_factory() -> tuple[ItemFactory, RosterView]:
    """The item factory of the fixed set: vector-a delivers to vector-b."""
    signed = sign_roster(fixed_roster(), fixed_roots()[:THRESHOLD])
    view = RosterView.parse(signed)
    factory = build_factory(
        view,
        Party(SENDER, Ed25519Key.from_label("vectors/vector-a")),
        RECEIVER,
        Party(THIRD_PARTY, Ed25519Key.from_label("vectors/vector-d")),
        clock=lambda: FIXED_NOW,
        url_prefix=FIXED_URL_PREFIX,
        random_bits=_fixed_random(),
    )
    return factory, view


# --- item vectors ------------------------------------------------------------------------------


def _name(entry: Case) -> str:
    slug = (entry.builder.__name__ if entry.builder else "item").replace("_", "-")
    return f"{entry.id}-{slug}" + ("_fail" if entry.must_reject else "")


def _signature_verifies(spec: ItemSpec, roster: RosterView) -> bool | None:
    envelope = spec.item.envelope
    key = roster.keys_of(envelope.signer_member_id).get(envelope.key_id)
    if key is None:
        return None
    return verify_envelope(envelope, key.public_key)


def item_vector(entry: Case, spec: ItemSpec, roster: RosterView, receiver: str) -> dict[str, Any]:
    """The JSON description of one item vector."""
    envelope = spec.item.envelope
    expect = spec.expect
    return {
        "id": entry.id,
        "section": entry.section,
        "description": entry.description,
        "valid": not expect.must_reject,
        "sender": spec.sender,
        "receiver": receiver,
        "via_member_ids": list(spec.item.via_member_ids),
        "item_id": spec.item_id,
        "envelope": {
            "payload_type": envelope.payload_type,
            "payload_hex": envelope.payload.hex(),
            "signer_member_id": envelope.signer_member_id,
            "key_id": envelope.key_id,
            "signature_hex": envelope.signature.hex(),
        },
        "payload_sha256_hex": hashlib.sha256(envelope.payload).hexdigest(),
        "pae_hex": (
            pae(envelope.payload_type, envelope.payload).hex()
            if len(envelope.payload) <= MAX_PAE_HEX_PAYLOAD
            else None
        ),
        "signature_verifies": _signature_verifies(spec, roster),
        "expected": {
            "outcome": receipt_pb2.Outcome.Name(expect.outcome),  # type: ignore[arg-type]
            "reject_reason": receipt_pb2.RejectReason.Name(expect.reason),  # type: ignore[arg-type]
            "forwarded_to": expect.forwarded_to,
        },
    }


def _vector_cases(*, with_extra_keys: bool) -> Iterator[Case]:
    for entry in all_cases():
        if entry.builder is None or not entry.vector:
            continue
        if entry.needs_extra_keys and not with_extra_keys:
            continue
        yield entry


def write_items(
    out: Path, factory: ItemFactory, roster: RosterView, *, with_extra_keys: bool
) -> list[dict[str, Any]]:
    """Write every item vector under ``out/items``; returns the index entries."""
    index = []
    for entry in _vector_cases(with_extra_keys=with_extra_keys):
        assert entry.builder is not None
        spec = entry.builder(factory)
        name = _name(entry)
        data = item_vector(entry, spec, roster, factory.target)
        data["files"] = {"item": f"{name}.item.bin", "envelope": f"{name}.envelope.bin"}
        _write(out / "items" / f"{name}.item.bin", spec.item.SerializeToString())
        _write(out / "items" / f"{name}.envelope.bin", spec.item.envelope.SerializeToString())
        _dump(out / "items" / f"{name}.json", data)
        index.append(
            {
                "id": entry.id,
                "file": f"items/{name}.json",
                "valid": data["valid"],
                "expected": data["expected"],
            }
        )
    return index


# --- known answers -----------------------------------------------------------------------------

PAE_CASES: tuple[tuple[str, str, bytes], ...] = (
    ("dsse-spec-example", "http://example.com/HelloWorld", b"hello world"),
    ("empty-payload", REPORT_TYPE, b""),
    ("report-type", REPORT_TYPE, b"\x0a\x24report"),
    ("payload-with-spaces", "hfp.v1.Receipt", b"a b  c "),
    ("empty-type", "", b"x"),
    ("non-ascii-type-counts-bytes", "hfp.v1.Ümlaut", b"\xc3\xbc"),
    ("all-byte-values", "hfp.v1.StatusUpdate", bytes(range(256))),
)

#: RFC 8032 section 7.1, TEST 1 and TEST 2.
RFC8032 = (
    (
        "rfc8032-test-1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "rfc8032-test-2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
)


def pae_vectors() -> list[dict[str, Any]]:
    """DSSE PAE known answers."""
    return [
        {
            "name": name,
            "payload_type": payload_type,
            "payload_hex": payload.hex(),
            "pae_hex": pae(payload_type, payload).hex(),
            "pae_text": pae(payload_type, payload).decode("utf-8", errors="replace"),
        }
        for name, payload_type, payload in PAE_CASES
    ]


def signature_vectors() -> list[dict[str, Any]]:
    """Ed25519 known answers (RFC 8032) and PAE signatures by a fixed key, with bad twins."""
    out: list[dict[str, Any]] = []
    for name, seed_hex, public_hex, message_hex, signature_hex in RFC8032:
        out.append(
            {
                "name": name,
                "seed_hex": seed_hex,
                "public_key_hex": public_hex,
                "key_id": hashlib.sha256(bytes.fromhex(public_hex)).hexdigest(),
                "message_hex": message_hex,
                "signature_hex": signature_hex,
                "valid": True,
            }
        )
    key = Ed25519Key.from_label("vectors/vector-a")
    for name, payload_type, payload in PAE_CASES[:3]:
        message = pae(payload_type, payload)
        signature = key.sign(message)
        base = {
            "seed_hex": key.seed.hex(),
            "public_key_hex": key.public_key.hex(),
            "key_id": key.key_id,
        }
        out.append(
            {
                **base,
                "name": f"pae-{name}",
                "message_hex": message.hex(),
                "signature_hex": signature.hex(),
                "valid": True,
            }
        )
        flipped = bytes([signature[0] ^ 0x01]) + signature[1:]
        out.append(
            {
                **base,
                "name": f"pae-{name}-flipped-signature_fail",
                "message_hex": message.hex(),
                "signature_hex": flipped.hex(),
                "valid": False,
            }
        )
        out.append(
            {
                **base,
                "name": f"pae-{name}-bare-payload_fail",
                "message_hex": message.hex(),
                "signature_hex": key.sign(payload).hex(),
                "valid": False,
            }
        )
    return out


def key_vectors() -> list[dict[str, Any]]:
    """Every fixed key: label, seed, public key, key id and PKCS#8 PEM."""
    labels = [
        *ROOT_LABELS,
        *(m.label for m in FIXED_MEMBERS),
        SECOND_KEY_LABEL,
        REVOKED_KEY_LABEL,
        RETIRED_KEY_LABEL,
    ]
    out = []
    for label in labels:
        key = Ed25519Key.from_label(label)
        out.append(
            {
                "label": label,
                "seed_hex": key.seed.hex(),
                "public_key_hex": key.public_key.hex(),
                "key_id": key.key_id,
                "pkcs8_pem": key.to_pem().decode(),
            }
        )
    return out


def roster_vectors(out: Path) -> list[dict[str, Any]]:
    """Threshold-signed roster vectors, valid and _fail, under ``out/rosters``."""
    roots = fixed_roots()
    stranger = Ed25519Key.from_label("vectors/not-a-root")
    data = fixed_roster(version=2)
    expired = fixed_roster(
        version=2, issued=datetime(2024, 1, 1, tzinfo=UTC), expires=datetime(2025, 3, 1, tzinfo=UTC)
    )
    tampered = sign_roster(data, roots[:2])
    tampered.roster = data.replace(b"vector-b", b"vector-x")
    cases: list[tuple[str, roster_pb2.SignedRoster, bool, str]] = [
        ("roots-1-2", sign_roster(data, roots[:2]), True, ""),
        ("roots-2-3", sign_roster(data, roots[1:]), True, ""),
        ("all-roots", sign_roster(data, roots), True, ""),
        ("below-threshold_fail", sign_roster(data, roots[:1]), False, "1 of 2 root signatures"),
        (
            "duplicated-signature_fail",
            sign_roster(data, [roots[0], roots[0]]),
            False,
            "one root counted twice",
        ),
        (
            "not-a-root_fail",
            sign_roster(data, [roots[0], stranger]),
            False,
            "second signature by a key that is not pinned",
        ),
        (
            "wrong-type_fail",
            sign_roster(data, roots[:2], signed_type=REPORT_TYPE),
            False,
            "signed over the PAE of hfp.v1.Report",
        ),
        ("tampered_fail", tampered, False, "roster bytes changed after signing"),
        ("expired_fail", sign_roster(expired, roots[:2]), False, "expired before `now`"),
    ]
    index = []
    for name, signed, valid, reason in cases:
        view_ok = True
        try:
            RosterView.parse(signed)
        except Exception:
            view_ok = False
        _write(out / "rosters" / f"{name}.bin", signed.SerializeToString())
        description = {
            "name": name,
            "valid": valid,
            "reason": reason,
            "threshold": THRESHOLD,
            "now": _iso(FIXED_NOW),
            "payload_type": ROSTER_TYPE,
            "parses": view_ok,
            "root_key_ids": [root_key_id(r.public_key) for r in roots],
            "signature_key_ids": [s.key_id for s in signed.signatures],
            "file": f"{name}.bin",
        }
        _dump(out / "rosters" / f"{name}.json", description)
        index.append({"name": name, "file": f"rosters/{name}.json", "valid": valid})
    return index


# --- writers -----------------------------------------------------------------------------------


def _fresh(out: Path) -> None:
    for sub in ("items", "rosters", "network"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)


def write_fixed(out: Path) -> int:
    """Write the fixed, network-free set to ``out``; returns how many vectors."""
    _fresh(out)
    factory, view = fixed_factory()
    roots = fixed_roots()
    _write(out / "network" / "roster.bin", view.signed.SerializeToString())
    _dump(out / "network" / "keys.json", key_vectors())
    items = write_items(out, factory, view, with_extra_keys=True)
    rosters = roster_vectors(out)
    paes = pae_vectors()
    signatures = signature_vectors()
    _dump(out / "pae.json", paes)
    _dump(out / "signatures.json", signatures)
    _dump(
        out / "index.json",
        {
            "format": FORMAT,
            "generated_by": "hfed conformance vectors --out DIR",
            "context": {
                "roster": "network/roster.bin",
                "keys": "network/keys.json",
                "root_public_keys_hex": [r.public_key.hex() for r in roots],
                "root_threshold": THRESHOLD,
                "sender": SENDER,
                "receiver": RECEIVER,
                "receiver_now": _iso(FIXED_NOW),
                "fallback_member_id": FALLBACK,
            },
            "items": items,
            "rosters": rosters,
            "pae": "pae.json",
            "signatures": "signatures.json",
        },
    )
    write_manifest(out)
    return len(items) + len(rosters) + len(paes) + len(signatures)


def write_for_network(out: Path, network: Path, target: str | None) -> int:
    """Write the item vectors for a test network, to be delivered by its conformance member."""
    manifest = Manifest.load(network)
    target_id = target or manifest.default_target()
    if target_id not in manifest.members:
        raise VectorError(f"the manifest has no member {target_id}")
    signed = roster_pb2.SignedRoster.FromString(manifest.path(manifest.roster).read_bytes())
    view = RosterView.parse(signed)
    other = choose_other_hotline(view, (target_id, CONFORMANCE_MEMBER))
    if other is None:
        raise VectorError("the network needs a second hotline besides the target")
    now = datetime.now(UTC)
    try:
        factory = build_factory(
            view,
            Party(CONFORMANCE_MEMBER, manifest.signing_key(CONFORMANCE_MEMBER)),
            target_id,
            Party(other.member_id, manifest.signing_key(other.member_id)),
            clock=lambda: now,
            url_prefix=f"https://vectors-{int(now.timestamp())}.conformance.example",
            random_bits=_fixed_random(),
        )
    except SetupError as exc:
        raise VectorError(str(exc)) from exc
    _fresh(out)
    items = write_items(out, factory, view, with_extra_keys=False)
    _dump(
        out / "index.json",
        {
            "format": FORMAT,
            "generated_by": f"hfed conformance vectors --network {network} --out {out}",
            "context": {
                "network": str(manifest.directory),
                "roster": str(manifest.path(manifest.roster)),
                "sender": CONFORMANCE_MEMBER,
                "receiver": target_id,
                "generated_at": _iso(now),
                "note": "time-dependent: deliver within an hour of generated_at, once",
            },
            "items": items,
        },
    )
    return len(items)
