"""The console's own accounts: name, role, Argon2id hash, in a small SQLite file.

These are not the node's tables: the file lives beside the node's data
(``console-users.sqlite`` next to the node's configuration by default) and
only the console reads it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    MetaData,
    RowMapping,
    String,
    Table,
    create_engine,
    select,
)
from sqlalchemy.exc import IntegrityError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024


class Role(enum.IntEnum):
    """What an account may do; each role may do everything of the ones below it."""

    ANALYST = 1
    SUPERVISOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as typed and shown (``analyst``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text`` (``analyst``, ``supervisor``, ``admin``)."""
        return cls[text.upper()]


class UserError(ValueError):
    """An account that cannot be created or changed as asked."""


@dataclass(frozen=True, slots=True)
class User:
    """One account as listed (never with its hash)."""

    name: str
    role: Role
    disabled: bool
    created_at: datetime


_metadata = MetaData()
_users = Table(
    "console_users",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class UserStore:
    """Accounts in one SQLite file (created on first use)."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self._engine = create_engine(f"sqlite:///{path}")
        _metadata.create_all(self._engine)
        # argon2-cffi's defaults are Argon2id with the RFC 9106 low-memory profile.
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash("not a password of anyone")

    def add(self, name: str, role: Role, password: str) -> User:
        """Create an account; UserError for a bad name, a weak password or a taken name."""
        if not NAME_RE.fullmatch(name):
            raise UserError("a name is 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        user = User(name, role, False, datetime.now(UTC))
        row = {
            "name": name,
            "role": role.label,
            "password_hash": self._hasher.hash(password),
            "disabled": False,
            "created_at": user.created_at,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(_users.insert().values(**row))
        except IntegrityError:
            raise UserError(f"{name} exists already") from None
        return user

    def users(self) -> list[User]:
        """Every account, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_users).order_by(_users.c.name)).mappings().all()
        return [_user(row) for row in rows]

    def disable(self, name: str) -> None:
        """Disable an account (it can no longer log in; its sessions end on next use)."""
        with self._engine.begin() as conn:
            done = conn.execute(_users.update().where(_users.c.name == name).values(disabled=True))
        if done.rowcount == 0:
            raise UserError(f"no account {name}")

    def user(self, name: str) -> User | None:
        """The account ``name``, if there is one."""
        with self._engine.connect() as conn:
            row = conn.execute(select(_users).where(_users.c.name == name)).mappings().first()
        return None if row is None else _user(row)

    def verify(self, name: str, password: str) -> User | None:
        """The enabled account whose password this is, or None.

        An unknown name costs one hash too, so timing does not tell which
        names exist."""
        with self._engine.connect() as conn:
            row = conn.execute(select(_users).where(_users.c.name == name)).mappings().first()
        stored = self._dummy if row is None else row["password_hash"]
        try:
            self._hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        return _user(row)

    def close(self) -> None:
        """Release the file."""
        self._engine.dispose()


def _user(row: RowMapping) -> User:
    return User(row["name"], Role.parse(row["role"]), bool(row["disabled"]), row["created_at"])
