"""Tests for crypto.keys and crypto.files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from crypto import KeyFormatError, SigningKey, key_id_for, public_key_from_hex, verify_signature
from crypto.files import write_private

# RFC 8032, section 7.1, TEST 1 (empty message).
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

# The Ed25519 identity point (y = 1): small order, so any implementation that
# accepts it as a public key would accept the trivial forgery below.
IDENTITY_POINT = b"\x01" + b"\x00" * 31
TRIVIAL_FORGERY = IDENTITY_POINT + b"\x00" * 32


def test_rfc8032_known_answer() -> None:
    key = SigningKey(RFC8032_SEED)
    assert key.public_key == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIGNATURE
    assert verify_signature(RFC8032_PUBLIC, b"", RFC8032_SIGNATURE)


def test_key_id_is_sha256_of_raw_public_key() -> None:
    key = SigningKey.generate()
    assert key.key_id == hashlib.sha256(key.public_key).hexdigest()
    assert key_id_for(key.public_key) == key.key_id
    assert key.key_id == key.key_id.lower()
    assert len(key.key_id) == 64


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 64])
def test_key_id_rejects_wrong_length(raw: bytes) -> None:
    with pytest.raises(KeyFormatError):
        key_id_for(raw)


def test_public_key_from_hex_round_trip() -> None:
    key = SigningKey.generate()
    assert public_key_from_hex(key.public_key.hex()) == key.public_key
    assert public_key_from_hex(key.public_key.hex().upper()) == key.public_key


@pytest.mark.parametrize("text", ["", "ab" * 31, "ab" * 33, "zz" * 32, " " + "ab" * 31 + "a"])
def test_public_key_from_hex_rejects_bad_input(text: str) -> None:
    with pytest.raises(KeyFormatError):
        public_key_from_hex(text)


@pytest.mark.parametrize("seed", [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 64])
def test_signing_key_rejects_bad_seed(seed: bytes) -> None:
    with pytest.raises(KeyFormatError):
        SigningKey(seed)


def test_generate_gives_distinct_keys() -> None:
    assert SigningKey.generate().public_key != SigningKey.generate().public_key


def test_sign_verify_round_trip() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"message")
    assert len(signature) == 64
    assert len(key.public_key) == 32
    assert verify_signature(key.public_key, b"message", signature)
    assert not verify_signature(key.public_key, b"messagE", signature)
    assert not verify_signature(SigningKey.generate().public_key, b"message", signature)


def test_signature_interoperates_with_cryptography() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"interop")
    key.to_cryptography().public_key().verify(signature, b"interop")  # raises if bad
    other = ed25519.Ed25519PrivateKey.generate()
    raw_public = other.public_key().public_bytes_raw()
    assert verify_signature(raw_public, b"interop", other.sign(b"interop"))


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        pytest.param(b"\x00" * 31, b"\x00" * 64, id="short-key"),
        pytest.param(b"\x00" * 33, b"\x00" * 64, id="long-key"),
        pytest.param(RFC8032_PUBLIC, RFC8032_SIGNATURE[:63], id="short-signature"),
        pytest.param(RFC8032_PUBLIC, RFC8032_SIGNATURE + b"\x00", id="long-signature"),
        pytest.param(RFC8032_PUBLIC, b"", id="empty-signature"),
        pytest.param(IDENTITY_POINT, TRIVIAL_FORGERY, id="small-order-key-forgery"),
        pytest.param(b"\x00" * 32, TRIVIAL_FORGERY, id="all-zero-key"),
        pytest.param(b"\xff" * 32, RFC8032_SIGNATURE, id="non-canonical-key"),
    ],
)
def test_verify_signature_returns_false_never_raises(public_key: bytes, signature: bytes) -> None:
    assert verify_signature(public_key, b"", signature) is False


def test_verify_rejects_non_canonical_s() -> None:
    # S + L (the group order) is the classic malleability; libsodium rejects it.
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(RFC8032_SIGNATURE[32:], "little")
    malleated = RFC8032_SIGNATURE[:32] + (s + order).to_bytes(32, "little")
    assert not verify_signature(RFC8032_PUBLIC, b"", malleated)


def test_pem_round_trip() -> None:
    key = SigningKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = SigningKey.from_pem(pem)
    assert loaded.public_key == key.public_key
    assert loaded.sign(b"x") == key.sign(b"x")  # Ed25519 is deterministic


def test_pem_cross_checks_with_cryptography() -> None:
    key = SigningKey.generate()
    theirs = serialization.load_pem_private_key(key.to_pem(), password=None)
    assert isinstance(theirs, ed25519.Ed25519PrivateKey)
    assert theirs.public_key().public_bytes_raw() == key.public_key

    foreign = ed25519.Ed25519PrivateKey.generate()
    foreign_pem = foreign.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert SigningKey.from_pem(foreign_pem).public_key == foreign.public_key().public_bytes_raw()


def _ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _encrypted_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def _public_pem() -> bytes:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize(
    "pem_factory",
    [
        pytest.param(_ec_pem, id="ec-key"),
        pytest.param(_encrypted_pem, id="encrypted"),
        pytest.param(_public_pem, id="public-key"),
        pytest.param(lambda: b"not a pem", id="garbage"),
        pytest.param(lambda: b"", id="empty"),
        pytest.param(
            lambda: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            id="truncated",
        ),
    ],
)
def test_from_pem_rejects_wrong_input(pem_factory: object) -> None:
    assert callable(pem_factory)
    with pytest.raises(KeyFormatError):
        SigningKey.from_pem(pem_factory())


def test_wrong_key_type_message_names_the_type() -> None:
    with pytest.raises(KeyFormatError, match="Ed25519"):
        SigningKey.from_pem(_ec_pem())


def test_save_and_load(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "node.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).public_key == key.public_key
    assert SigningKey.load(str(path)).public_key == key.public_key
    assert os.listdir(tmp_path) == ["node.key"]  # no temp file left behind


def test_save_tightens_permissions_of_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    SigningKey.generate().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SigningKey.load(tmp_path / "absent.key")


def test_repr_does_not_leak_seed() -> None:
    key = SigningKey(RFC8032_SEED)
    text = repr(key)
    assert RFC8032_SEED.hex() not in text
    assert key.key_id in text


def test_write_private_failure_keeps_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    write_private(path, b"original")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_private(path, b"new")
    assert path.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["secret"]
