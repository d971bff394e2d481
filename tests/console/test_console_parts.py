"""The console's own parts, without a node: accounts, sessions, throttling, the URL check."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.console.sessions import Sessions
from federation.console.throttle import LoginThrottle
from federation.console.users import Role, UserError, UserStore
from tests.console.browser import assert_never_loaded, loaded_addresses

STATIC = Path(__file__).resolve().parents[2] / "federation" / "console" / "static"
TEMPLATES = STATIC.parent / "templates"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_accounts_are_hashed_with_argon2id_and_can_be_disabled(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    store.add("ana", Role.ANALYST, "a long enough password")
    stored = (tmp_path / "users.sqlite").read_bytes()
    assert b"$argon2id$" in stored and b"a long enough password" not in stored
    assert store.verify("ana", "a long enough password") is not None
    assert store.verify("ana", "wrong password here") is None
    assert store.verify("nobody", "a long enough password") is None
    store.disable("ana")
    assert store.verify("ana", "a long enough password") is None
    assert [(u.name, u.role, u.disabled) for u in store.users()] == [("ana", Role.ANALYST, True)]


@pytest.mark.parametrize(
    ("name", "password"), [("Ana", "a long enough password"), ("ana", "short"), ("", "x" * 20)]
)
def test_bad_names_and_short_passwords_are_refused(
    tmp_path: Path, name: str, password: str
) -> None:
    with pytest.raises(UserError):
        UserStore(tmp_path / "users.sqlite").add(name, Role.ADMIN, password)


def test_a_taken_name_is_refused(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    store.add("ana", Role.ANALYST, "a long enough password")
    with pytest.raises(UserError, match="exists"):
        store.add("ana", Role.ADMIN, "another long password")


def test_sessions_expire_when_idle_and_stay_bounded() -> None:
    clock = Clock()
    sessions = Sessions(idle_seconds=60, max_sessions=2, clock=clock)
    first = sessions.start("ana")
    clock.now += 59
    assert sessions.find(first.token) is first  # use restarts the idle clock
    clock.now += 59
    assert sessions.find(first.token) is first
    clock.now += 61
    assert sessions.find(first.token) is None
    a, b, c = (sessions.start(n) for n in ("a", "b", "c"))
    assert sessions.find(a.token) is None and sessions.find(c.token) is c
    assert a.csrf != b.csrf and a.token != b.token


def test_throttle_locks_an_account_and_an_address_for_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_account=3, per_address=5, window=600, max_keys=100, clock=clock)
    for _ in range(3):
        assert throttle.wait("ana", "10.0.0.1") == 0
        throttle.failed("ana", "10.0.0.1")
    assert throttle.wait("ana", "10.0.0.2") == 600  # the account, from anywhere
    assert throttle.wait("bob", "10.0.0.1") == 0
    for name in ("b1", "b2"):
        throttle.failed(name, "10.0.0.1")
    assert throttle.wait("bob", "10.0.0.1") == 600  # the address, for any account
    clock.now += 601
    assert throttle.wait("ana", "10.0.0.1") == 0


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_keys=50)
    for i in range(1000):
        throttle.failed(f"name{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._counts) <= 50


@pytest.mark.parametrize(
    "page",
    [
        '<a href="https://bad.example.com/x">x</a>',
        "<img src=https://bad.example.com/x>",
        '<div style="background: url(https://bad.example.com/x)"></div>',
        "<style>p { background: url('https://bad.example.com/x') }</style>",
        '<form action="https://bad.example.com/x"></form>',
    ],
)
def test_the_url_check_finds_a_loadable_reported_url(page: str) -> None:
    with pytest.raises(AssertionError):
        assert_never_loaded(page, ["https://bad.example.com/x"])


def test_the_url_check_lets_escaped_text_be() -> None:
    page = "<code>&lt;img src=&quot;https://bad.example.com/x&quot;&gt;</code><a href=/inbox>i</a>"
    assert loaded_addresses(page) == ["/inbox"]
    assert_never_loaded(page, ["https://bad.example.com/x"])


def test_the_package_ships_no_script_no_inline_style_and_loads_nothing_remote() -> None:
    assert "url(" not in (STATIC / "console.css").read_text()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert "<script" not in text and "style=" not in text and "<style" not in text, template
        assert "http://" not in text and "https://" not in text, template


def test_plots_escape_their_labels_and_use_no_style() -> None:
    from federation.console import plots

    drawn = str(plots.bars("a <b>", [("<script>x</script>", 3.0), ("ok", 0.0)]))
    drawn += str(plots.line("trend", [("w1", 1.0), ("w2", None), ("<i>", 2.5)], " h"))
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn and "&lt;i&gt;" in drawn
    assert "style" not in drawn and "url(" not in drawn
    assert drawn.count("<circle") == 2


def test_ids_made_together_look_different_in_tables() -> None:
    from federation.console.web import short_id
    from federation.core.ids import new_uuid7

    ids = [new_uuid7() for _ in range(50)]  # within a few milliseconds: one time prefix
    assert len({i[:8] for i in ids}) < len(ids)  # what the tables showed before
    assert len({short_id(i) for i in ids}) == len(ids)
    assert all(i.endswith(short_id(i).removeprefix("…")) for i in ids)
