"""The liaison profile file and the saved watch position (no server needed)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crypto.x509ca import create_ca
from federation.cli.liaison.profile import (
    CertificateExpiredError,
    CursorFileError,
    CursorStore,
    ProfileError,
    WatchLockedError,
    load_profile,
)
from tests.liaison_client.helpers import write_identity, write_profile


def test_valid_profile_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "police")
    profile = load_profile(path)
    assert profile.member_id == "police-dk"
    assert profile.node == "127.0.0.1:1"
    assert profile.node_label == "hotline-dk (127.0.0.1:1)"
    assert profile.cert == (tmp_path / "police" / "police-dk.pem").resolve()
    assert profile.state_dir == (tmp_path / "police" / "state").resolve()
    assert profile.check_certificate(datetime.now(UTC)) > datetime.now(UTC)


def test_state_dir_defaults_next_to_the_profile(tmp_path: Path) -> None:
    profile = load_profile(write_profile(tmp_path, state_dir="<omit>", node_member_id="<omit>"))
    assert profile.state_dir == tmp_path.resolve() / "liaison-state"
    assert profile.node_label == "127.0.0.1:1"


def test_no_profile_says_how_to_give_one() -> None:
    with pytest.raises(ProfileError, match="--profile FILE or set HFED_LIAISON_PROFILE"):
        load_profile(None)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "liaison.toml"
    path.write_text('member_id = "police-dk\n')
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        member_id="Police DK",
        node="no-port",
        node_member_id="Hotline!",
        cert="missing.pem",
        colour="blue",
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    for line in (
        "member_id: must be a member id",
        "node: must be host:port",
        "node_member_id: must be a member id",
        "cert: file not found",
        "colour: unknown setting (allowed: member_id, node,",
    ):
        assert line in message, message


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="key: missing"):
        load_profile(write_profile(tmp_path, key="<omit>"))


def test_expired_certificate_is_refused_before_connecting(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = create_ca("test CA", now=now - timedelta(days=10))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    cert, key = write_identity(tmp_path, ca, "police-dk", valid_days=1, now=now - timedelta(days=5))
    profile = load_profile(write_profile(tmp_path, ca_cert="ca.pem", cert=cert.name, key=key.name))
    with pytest.raises(CertificateExpiredError) as caught:
        profile.check_certificate(now)
    message = str(caught.value)
    assert message.startswith("your certificate expired on ")
    assert "ask the network operator for a new one" in message


def test_certificate_of_another_member_is_refused(tmp_path: Path) -> None:
    ca = create_ca("test CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    cert, key = write_identity(tmp_path, ca, "police-nl")
    profile = load_profile(write_profile(tmp_path, ca_cert="ca.pem", cert=cert.name, key=key.name))
    with pytest.raises(ProfileError, match="belongs to police-nl"):
        profile.check_certificate(datetime.now(UTC))


def test_a_file_that_is_no_certificate(tmp_path: Path) -> None:
    path = write_profile(tmp_path)
    (tmp_path / "police-dk.pem").write_text("not a certificate")
    with pytest.raises(ProfileError, match="not a PEM certificate"):
        load_profile(path).check_certificate(datetime.now(UTC))


# --- the saved watch position ------------------------------------------------------


def test_cursor_round_trip(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "state", "hotline-dk")
    assert store.load() is None
    store.save("djE6NA==", 4)
    saved = store.load()
    assert saved is not None and (saved.cursor, saved.sequence) == ("djE6NA==", 4)
    store.save("djE6NQ==", 5)
    saved = store.load()
    assert saved is not None and saved.sequence == 5
    assert json.loads(store.path.read_text())["version"] == 1
    # Only the cursor file: no temporary file left behind by the atomic replace.
    assert sorted(p.name for p in store.path.parent.iterdir()) == [store.path.name]


def test_cursor_files_are_per_node(tmp_path: Path) -> None:
    one, two = CursorStore(tmp_path, "hotline-dk"), CursorStore(tmp_path, "hotline-nl")
    one.save("a", 1)
    assert two.load() is None


def test_profile_keys_the_cursor_by_node(tmp_path: Path) -> None:
    profile = load_profile(write_profile(tmp_path))
    assert profile.cursor_store().path.name == "watch-cursor.hotline-dk.json"
    bare = load_profile(write_profile(tmp_path / "b", node_member_id="<omit>"))
    assert bare.cursor_store().path.name == "watch-cursor.127.0.0.1_1.json"


def test_a_failed_save_keeps_the_previous_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CursorStore(tmp_path, "hotline-dk")
    store.save("first", 1)

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CursorFileError, match="cannot save the watch position"):
        store.save("second", 2)
    monkeypatch.undo()
    saved = store.load()
    assert saved is not None and (saved.cursor, saved.sequence) == ("first", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.path.name]


@pytest.mark.parametrize(
    "content",
    ["", "{", '{"cursor": 3, "sequence": 1}', '{"cursor": "x"}', '["x", 1]'],
)
def test_a_damaged_cursor_file_is_not_guessed(tmp_path: Path, content: str) -> None:
    store = CursorStore(tmp_path, "hotline-dk")
    store.path.write_text(content)
    with pytest.raises(CursorFileError, match="--from-start"):
        store.load()


def test_one_watch_per_state_directory(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "state", "hotline-dk")
    with (
        store.exclusive(),
        pytest.raises(WatchLockedError, match="already running"),
        store.exclusive(),
    ):
        pass
    with store.exclusive():  # released again
        pass
