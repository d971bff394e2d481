"""The harness's own crypto and vectors, checked against known answers and the node.

No network here. Tests may import the node (only ``conformance/`` may not):
agreeing with the node's independent implementation of PAE, Ed25519 and the
root threshold is the point of several checks below.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance import vectors_manifest
from conformance.cases import all_cases
from conformance.dsse import pae, verify_envelope
from conformance.keys import Ed25519Key, key_id, verify
from conformance.rosters import RosterView, valid_root_signers
from conformance.runner import (
    FAIL,
    PASS,
    XFAIL,
    XPASS,
    UsageError,
    case_table_markdown,
    classify,
    load_xfail,
    select,
)
from conformance.vectors import THRESHOLD, fixed_factory, write_fixed
from conformance.vectors_manifest import VECTORS_VERSION, VectorsError, write_manifest
from crypto import dsse as node_dsse
from crypto.keys import SigningKey, key_id_for, verify_signature
from crypto.threshold import TrustAnchor
from federation.core.roster import RosterError, decide_roster_update
from federation.trust.holder import RosterRejectedError, verify_signed_roster
from hfp.v1 import envelope_pb2, federation_service_pb2, roster_pb2

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "conformance-vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def _index() -> dict[str, Any]:
    index: dict[str, Any] = _load("index.json")
    return index


def _item_files() -> list[Path]:
    return sorted((VECTORS / "items").glob("*.json"))


def _roster_files() -> list[Path]:
    return sorted((VECTORS / "rosters").glob("*.json"))


# --- the shipped set is reproducible ------------------------------------------------------


def test_fixed_vectors_regenerate_byte_for_byte(tmp_path: Path) -> None:
    write_fixed(tmp_path)
    shipped = {
        p.relative_to(VECTORS)
        for p in VECTORS.rglob("*")
        if p.is_file() and p.name not in ("README.md", "versions.json")
    }
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert made == shipped, "regenerate: hfed conformance vectors --out conformance-vectors"
    for relative in sorted(made):
        assert (tmp_path / relative).read_bytes() == (VECTORS / relative).read_bytes(), relative


# --- PAE and signatures -------------------------------------------------------------------


@pytest.mark.parametrize("vector", _load("pae.json"), ids=lambda v: v["name"])
def test_pae_known_answers(vector: dict[str, Any]) -> None:
    payload = bytes.fromhex(vector["payload_hex"])
    expected = bytes.fromhex(vector["pae_hex"])
    assert pae(vector["payload_type"], payload) == expected
    assert node_dsse.pae(vector["payload_type"], payload) == expected


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize("vector", _load("signatures.json"), ids=lambda v: v["name"])
def test_signature_known_answers(vector: dict[str, Any]) -> None:
    key = Ed25519Key(bytes.fromhex(vector["seed_hex"]))
    public = bytes.fromhex(vector["public_key_hex"])
    message = bytes.fromhex(vector["message_hex"])
    signature = bytes.fromhex(vector["signature_hex"])
    assert key.public_key == public
    assert key.key_id == vector["key_id"] == key_id_for(public)
    assert verify(public, message, signature) is vector["valid"]
    assert verify_signature(public, message, signature) is vector["valid"]
    if vector["valid"]:
        assert key.sign(message) == signature  # Ed25519 is deterministic


@pytest.mark.parametrize("vector", _load("network/keys.json"), ids=lambda v: v["label"])
def test_keys_from_labels_and_pem(vector: dict[str, Any]) -> None:
    key = Ed25519Key.from_label(vector["label"])
    assert key.seed.hex() == vector["seed_hex"]
    assert key.public_key.hex() == vector["public_key_hex"]
    assert key.key_id == vector["key_id"] == key_id(key.public_key)
    pem = vector["pkcs8_pem"].encode()
    assert Ed25519Key.from_pem(pem).seed == key.seed
    assert SigningKey.from_pem(pem).key_id == key.key_id


def test_the_harness_reads_the_node_s_key_files(tmp_path: Path) -> None:
    node_key = SigningKey.generate()
    node_key.save(tmp_path / "k.pem")
    mine = Ed25519Key.from_file(tmp_path / "k.pem")
    assert mine.key_id == node_key.key_id
    message = pae("hfp.v1.Report", b"payload")
    assert verify_signature(node_key.public_key, message, mine.sign(message)) is True
    assert mine.sign(message) == node_key.sign(message)


# --- item vectors -----------------------------------------------------------------------------


def _roster() -> RosterView:
    signed = roster_pb2.SignedRoster.FromString((VECTORS / "network/roster.bin").read_bytes())
    return RosterView.parse(signed)


@pytest.mark.parametrize("path", _item_files(), ids=lambda p: p.stem)
def test_item_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    fields = vector["envelope"]
    envelope = envelope_pb2.SignedEnvelope.FromString(
        (path.parent / vector["files"]["envelope"]).read_bytes()
    )
    item = federation_service_pb2.ForwardedItem.FromString(
        (path.parent / vector["files"]["item"]).read_bytes()
    )
    assert item.envelope == envelope
    assert list(item.via_member_ids) == vector["via_member_ids"]
    assert envelope.payload.hex() == fields["payload_hex"]
    assert envelope.payload_type == fields["payload_type"]
    assert envelope.signer_member_id == fields["signer_member_id"]
    assert envelope.key_id == fields["key_id"]
    assert envelope.signature.hex() == fields["signature_hex"]
    assert path.stem.endswith("_fail") is (not vector["valid"])
    key = _roster().keys_of(envelope.signer_member_id).get(envelope.key_id)
    if key is None:
        assert vector["signature_verifies"] is None
    else:
        ours = verify_envelope(envelope, key.public_key)
        theirs = node_dsse.verify_envelope_signature(
            node_dsse.Envelope(
                envelope.payload,
                envelope.payload_type,
                envelope.signer_member_id,
                envelope.key_id,
                envelope.signature,
            ),
            key.public_key,
        )
        assert ours is theirs is vector["signature_verifies"]
    if vector["expected"]["reject_reason"] == "REJECT_REASON_BAD_SIGNATURE":
        assert vector["signature_verifies"] is not True
    if vector["valid"]:
        assert vector["signature_verifies"] is True


def test_index_lists_every_item_vector() -> None:
    listed = {entry["file"] for entry in _index()["items"]}
    assert listed == {f"items/{p.name}" for p in _item_files()}


# --- roster vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", _roster_files(), ids=lambda p: p.stem)
def test_roster_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    data = (path.parent / vector["file"]).read_bytes()
    signed = roster_pb2.SignedRoster.FromString(data)
    roots = [bytes.fromhex(k) for k in _index()["context"]["root_public_keys_hex"]]
    now = datetime.fromisoformat(vector["now"].replace("Z", "+00:00"))
    enough = len(valid_root_signers(signed, roots)) >= vector["threshold"] == THRESHOLD
    view = RosterView.parse(signed)
    assert (enough and view.expires_at() > now) is vector["valid"]
    # The node's implementation agrees.
    anchor = TrustAnchor.from_public_keys(roots, THRESHOLD)
    try:
        installed = verify_signed_roster(data, anchor)
        decide_roster_update(None, None, installed.roster, installed.roster_bytes, now)
        node_valid = True
    except (RosterRejectedError, RosterError):
        node_valid = False
    assert node_valid is vector["valid"]


# --- the case set -----------------------------------------------------------------------------


def test_case_set_size_and_shape() -> None:
    cases = all_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert len(cases) >= 220
    assert sum(c.must_reject for c in cases) >= 0.6 * len(cases)
    for entry in cases:
        assert re.fullmatch(r"[A-Z]{3}-\d{3}", entry.id), entry.id
        assert re.fullmatch(r"\d{1,2}(\.\d{1,2})?", entry.section), entry.id
        assert entry.description and len(entry.description) <= 100, entry.id
    families = {c.family for c in cases}
    assert families >= {"envelopes", "rosters", "routing", "dedup", "status", "§10", "liaison"}
    assert "limits" in families
    rules = {c.section for c in cases if c.family == "§10"}
    assert {f"10.{n}" for n in range(1, 8)} <= rules


@pytest.mark.parametrize(
    ("section", "description"),
    [("", "a rule"), ("x", "a rule"), ("10.1", ""), ("10.1", "two\nlines"), ("2", "x" * 101)],
)
def test_registry_refuses_a_case_without_rule_or_section(section: str, description: str) -> None:
    from conformance.registry import REGISTRY, case

    before = len(REGISTRY)
    with pytest.raises(ValueError, match="ENV-999"):
        case("ENV-999", section, description)(lambda ctx: None)
    assert len(REGISTRY) == before


# --- versioned vectors ----------------------------------------------------------------------


def test_shipped_vectors_match_their_manifest_and_record() -> None:
    assert vectors_manifest.verify(VECTORS) == VECTORS_VERSION
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    assert manifest["version"] == VECTORS_VERSION
    assert set(manifest["files"]) == {
        p.relative_to(VECTORS).as_posix()
        for p in VECTORS.rglob("*")
        if p.is_file() and p.name not in ("README.md", "manifest.json", "versions.json")
    }


def test_a_changed_vector_without_a_version_change_fails(tmp_path: Path) -> None:
    copy = tmp_path / "vectors"
    shutil.copytree(VECTORS, copy)
    target = copy / "pae.json"
    target.write_text(target.read_text().replace("DSSEv1", "DSSEv2", 1))
    with pytest.raises(VectorsError, match=r"differ from manifest\.json"):
        vectors_manifest.verify(copy)
    # Regenerating the manifest under the same version still fails: the record says otherwise.
    write_manifest(copy, VECTORS_VERSION)
    with pytest.raises(VectorsError, match="without a version change"):
        vectors_manifest.verify(copy)
    # A new version with its own record line is accepted.
    write_manifest(copy, "99.0")
    record = json.loads((copy / "versions.json").read_text())
    record["99.0"] = json.loads((copy / "manifest.json").read_text())["set_sha256"]
    (copy / "versions.json").write_text(json.dumps(record))
    assert vectors_manifest.verify(copy) == "99.0"


def test_every_recorded_version_is_distinct() -> None:
    record = json.loads((VECTORS / "versions.json").read_text())
    assert VECTORS_VERSION in record
    assert len(set(record.values())) == len(record)


def test_item_builders_agree_with_their_registration() -> None:
    factory, _ = fixed_factory()
    for entry in all_cases():
        if entry.builder is not None:
            spec = entry.builder(factory)
            assert spec.expect.must_reject is entry.must_reject, entry.id


def test_readme_case_table_is_current() -> None:
    readme = (ROOT / "conformance" / "README.md").read_text()
    begin = readme.index("\n", readme.index("<!-- cases:begin")) + 1
    table = readme[begin : readme.index("<!-- cases:end -->")]
    expected = case_table_markdown(all_cases())
    assert table.strip() == expected.strip(), "update the case table in conformance/README.md"


# --- runner helpers ---------------------------------------------------------------------------


def test_select_by_glob_regex_and_lists() -> None:
    cases = all_cases()
    assert {c.id for c in select(cases, ["ENV-00[1-3]"])} == {"ENV-001", "ENV-002", "ENV-003"}
    assert all(c.group == "ROS" for c in select(cases, ["ROS-*"]))
    assert {c.id for c in select(cases, ["SVC-001,TLS-001"])} == {"SVC-001", "TLS-001"}
    assert {c.id for c in select(cases, ["SVC-00.", "TLS-00[12]"])} == {
        "SVC-001",
        "SVC-002",
        "TLS-001",
        "TLS-002",
    }
    with pytest.raises(UsageError):
        select(cases, ["NOPE-*"])


def test_xfail_file(tmp_path: Path) -> None:
    path = tmp_path / "xfail.txt"
    path.write_text("# comment\n\nENV-001  # why\nROS-016\n")
    assert load_xfail(path) == {"ENV-001": "why", "ROS-016": ""}
    path.write_text("ENV-999\n")
    with pytest.raises(UsageError):
        load_xfail(path)
    shipped = load_xfail(ROOT / "tests" / "conformance" / "known-failures.txt")
    assert all(note for note in shipped.values())


def test_classify() -> None:
    expected = {"ENV-001": "known bug"}
    assert classify(FAIL, "x", expected, "ENV-001") == (XFAIL, "x [expected: known bug]")
    assert classify(PASS, "", expected, "ENV-001")[0] == XPASS
    assert classify(FAIL, "x", expected, "ENV-002") == (FAIL, "x")


def test_fixed_clock_is_utc() -> None:
    factory, _ = fixed_factory()
    assert factory.clock().tzinfo == UTC
