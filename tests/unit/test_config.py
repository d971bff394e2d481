"""Configuration loading: relative paths, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.node.config import ConfigError, load_config

GOOD = """
member_id = "hotline-dk"
listen = "127.0.0.1:7101"
database_url = "sqlite:///data/node.db"
[tls]
cert = "tls.pem"
key = "tls.key"
ca_cert = "../ca.pem"
[signing]
key = "signing.pem"
[trust]
root_public_keys = ["aa"]
threshold = 1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.tls is not None
    assert config.tls.cert == tmp_path.resolve() / "tls.pem"
    assert config.database_url == f"sqlite:///{tmp_path.resolve()}/data/node.db"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('member_id = "hotline-dk"', 'member_id = "Hotline DK"', "member_id"),
        ('listen = "127.0.0.1:7101"', 'listen = "nowhere"', "listen"),
        ("threshold = 1", "threshold = 0", "trust.threshold"),
        ("threshold = 1", "threshold = 1\ncolour = 'red'", "trust.colour"),
        ('database_url = "sqlite:///data/node.db"', "", "database_url"),
        ("[tls]", "[tls]\nextra = 1", "tls.extra"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, GOOD.replace(old, new)))


def test_tls_required_unless_dev_flag(tmp_path: Path) -> None:
    text = GOOD.split("[tls]", maxsplit=1)[0] + "[signing]" + GOOD.split("[signing]")[1]
    with pytest.raises(ConfigError, match="tls"):
        load_config(_write(tmp_path, text))
    assert load_config(_write(tmp_path, "insecure_plaintext = true\n" + text)).insecure_plaintext


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "member_id = "))


def test_environment_overrides_sections_and_top_level(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    config = load_config(
        path,
        {
            "HFED_OUTBOX__BATCH_SIZE": "200",
            "HFED_DATABASE_URL": "sqlite:///other.db",
            "HFED_TRUST__ROOT_PUBLIC_KEYS": '["bb", "cc"]',
            "HFED_DEVNET": "ignored",
            "HFED_MEMBER": "hotline-nl",  # the CLI's, not a setting
            "UNRELATED": "x",
        },
    )
    assert config.outbox.batch_size == 200
    assert config.database_url == f"sqlite:///{tmp_path.resolve()}/other.db"
    assert config.trust.root_public_keys == ["bb", "cc"]


def test_bad_environment_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HFED_OUTBOX__BATCH_SIZE(.|\n)*outbox\.batch_size"):
        load_config(_write(tmp_path, GOOD), {"HFED_OUTBOX__BATCH_SIZE": "lots"})
    with pytest.raises(ConfigError, match="HFED_OUTBOX__COLOUR"):
        load_config(_write(tmp_path, GOOD), {"HFED_OUTBOX__COLOUR": "red"})


def test_signing_keys_may_be_a_list_beside_the_single_key(tmp_path: Path) -> None:
    text = GOOD.replace('key = "signing.pem"', 'key = "signing.pem"\nkeys = ["keys/next.pem"]')
    config = load_config(_write(tmp_path, text))
    root = tmp_path.resolve()
    assert config.signing.paths == (root / "signing.pem", root / "keys/next.pem")
    only_list = GOOD.replace('key = "signing.pem"', 'keys = ["a.pem"]')
    assert load_config(_write(tmp_path, only_list)).signing.paths == (root / "a.pem",)
    with pytest.raises(ConfigError, match="signing"):
        load_config(_write(tmp_path, GOOD.replace('key = "signing.pem"', "")))


def test_reuse_port_is_for_a_shared_postgresql_database_only(tmp_path: Path) -> None:
    shared = GOOD + "[scale_out]\nreuse_port = true\n"
    with pytest.raises(ConfigError, match="reuse_port needs a PostgreSQL"):
        load_config(_write(tmp_path, shared))
    on_postgres = shared.replace(
        'database_url = "sqlite:///data/node.db"',
        'database_url = "postgresql+psycopg://hfed@127.0.0.1:5432/dk"',
    )
    config = load_config(_write(tmp_path, on_postgres))
    assert config.scale_out.reuse_port and config.shares_database
    assert not load_config(_write(tmp_path, GOOD)).shares_database
