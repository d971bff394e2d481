"""A police liaison's client profile, and where its watch position is kept.

The profile is a small TOML file (written by ``hfed devnet init`` for the test
network, by the network operator otherwise) naming the liaison, the hotline
node to call and the TLS material to call it with. Paths in it are relative to
the file itself, so a profile directory can be moved or copied as a whole.

The watch position (the cursor of the last event printed) lives in the
profile's ``state_dir``: it is what lets ``hfed liaison watch`` resume after a
restart without skipping or repeating an event, so it is written atomically
and durably after every event.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from crypto.errors import CertificateError
from crypto.files import write_private
from crypto.x509ca import cert_not_after, member_id_from_cert
from federation.core.ids import MEMBER_ID_RE
from peers.channel import ClientIdentity

#: Environment variable naming the profile when --profile is not given.
PROFILE_ENV = "HFED_LIAISON_PROFILE"
#: Version of the cursor file layout, so a future client can migrate it.
CURSOR_FILE_VERSION = 1


class ProfileError(ValueError):
    """The profile is missing, unreadable or invalid; the message says which key."""


class CertificateExpiredError(ProfileError):
    """The profile's client certificate is no longer valid."""


class CursorFileError(ValueError):
    """The saved watch position cannot be read or written."""


class WatchLockedError(CursorFileError):
    """Another watch is already using this state directory."""


class LiaisonProfile(BaseModel):
    """Who the liaison is, which node it talks to, and with which certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The liaison's roster member id (must match its certificate).
    member_id: str
    #: host:port of the hotline node responsible for the liaison's country.
    node: str
    #: The member id of that node, used in messages and to key the cursor file.
    node_member_id: str = ""
    #: The network CA certificate (PEM) that the node's certificate must chain to.
    ca_cert: Path
    #: The liaison's client certificate (PEM).
    cert: Path
    #: The liaison's private key (PEM).
    key: Path
    #: Where the client keeps its watch cursor (created if missing).
    state_dir: Path = Path("liaison-state")

    @field_validator("member_id")
    @classmethod
    def _member_id(cls, value: str) -> str:
        if not MEMBER_ID_RE.fullmatch(value):
            raise ValueError("must be a member id such as police-dk (^[a-z0-9][a-z0-9-]{1,62}$)")
        return value

    @field_validator("node_member_id")
    @classmethod
    def _node_member_id(cls, value: str) -> str:
        if value and not MEMBER_ID_RE.fullmatch(value):
            raise ValueError("must be a member id such as hotline-dk")
        return value

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:7101")
        return value

    @field_validator("ca_cert", "cert", "key")
    @classmethod
    def _readable(cls, value: Path) -> Path:
        # Checked here so that a typo shows up as "cert: file not found"
        # rather than as a TLS failure after connecting.
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @property
    def node_label(self) -> str:
        """The node as people know it: 'hotline-dk (127.0.0.1:7101)'."""
        return f"{self.node_member_id} ({self.node})" if self.node_member_id else self.node

    def identity(self) -> ClientIdentity:
        """The TLS client identity to call the node with."""
        try:
            return ClientIdentity.from_files(self.ca_cert, self.cert, self.key)
        except OSError as exc:
            raise ProfileError(f"cannot read {exc.filename}: {exc.strerror}") from exc

    def check_certificate(self, now: datetime) -> datetime:
        """Refuse an expired or foreign certificate before any connection is made.

        A node would refuse an expired certificate too, but only as an opaque
        TLS handshake failure ("UNAVAILABLE"), which sends people looking for
        a network problem. Returns the certificate's expiry.
        """
        try:
            pem = self.cert.read_bytes()
            not_after = cert_not_after(pem)
            owner = member_id_from_cert(pem)
        except OSError as exc:
            raise ProfileError(f"cert: cannot read {self.cert}: {exc.strerror}") from exc
        except CertificateError as exc:
            raise ProfileError(f"cert: {self.cert} is not a PEM certificate ({exc})") from exc
        if not_after <= now:
            raise CertificateExpiredError(
                f"your certificate expired on {not_after:%Y-%m-%d %H:%M} UTC; "
                "ask the network operator for a new one"
            )
        if owner is not None and owner != self.member_id:
            raise ProfileError(
                f"cert: {self.cert} belongs to {owner}, but the profile says member_id = "
                f"{self.member_id!r}; ask the network operator for the right files"
            )
        return not_after

    def cursor_store(self) -> CursorStore:
        """Where this profile's watch position for its node is kept."""
        # Keyed by node: cursors are positions in one node's event log and
        # mean nothing to another node.
        key = self.node_member_id or re.sub(r"[^A-Za-z0-9.-]", "_", self.node)
        return CursorStore(self.state_dir, key)


def _resolve(base: Path, raw: dict[str, object]) -> None:
    """Make relative paths relative to the profile file's directory."""
    for key in ("ca_cert", "cert", "key", "state_dir"):
        value = raw.get(key)
        if isinstance(value, str):
            raw[key] = str(base / Path(value).expanduser())
    raw.setdefault("state_dir", str(base / "liaison-state"))


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting (allowed: " + ", ".join(LiaisonProfile.model_fields) + ")"
        elif item["type"] == "missing":
            message = "missing (required)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def load_profile(path: Path | None) -> LiaisonProfile:
    """Read and validate a profile; ``ProfileError`` names every bad key."""
    if path is None:
        raise ProfileError(f"no profile given: use --profile FILE or set {PROFILE_ENV}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"profile {path} not found") from None
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from exc
    _resolve(path.resolve().parent, raw)
    try:
        return LiaisonProfile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"profile {path} has invalid settings:\n{_describe(exc)}") from exc


@dataclass(frozen=True, slots=True)
class SavedCursor:
    """The watch position: right after the event with this sequence number."""

    cursor: str
    sequence: int
    saved_at: str


class CursorStore:
    """The watch cursor of one node, in one small JSON file under ``state_dir``."""

    def __init__(self, state_dir: Path, node_key: str) -> None:
        self.state_dir = state_dir
        self.path = state_dir / f"watch-cursor.{node_key}.json"
        self._lock_path = state_dir / f"watch-cursor.{node_key}.lock"

    def load(self) -> SavedCursor | None:
        """The saved position, or None when there is none yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CursorFileError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            cursor, sequence = data["cursor"], data["sequence"]
            if not isinstance(cursor, str) or not cursor or not isinstance(sequence, int):
                raise TypeError("cursor must be a non-empty string, sequence an integer")
        except (ValueError, KeyError, TypeError) as exc:
            # Saves are atomic, so this is outside damage; never guess a
            # position, since guessing wrong skips events silently.
            raise CursorFileError(
                f"the saved watch position in {self.path} is damaged ({exc}); "
                "use --from-start to start again from the first event"
            ) from exc
        return SavedCursor(cursor, sequence, str(data.get("saved_at", "")))

    def save(self, cursor: str, sequence: int) -> None:
        """Durably record the position after an event (atomic replace + fsync).

        A crash at any point leaves either the previous position or this one,
        never a torn file: the bytes go to a temporary file that is fsynced
        and then renamed over the old one (write_private does exactly that).
        """
        record = {
            "version": CURSOR_FILE_VERSION,
            "cursor": cursor,
            "sequence": sequence,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            write_private(self.path, (json.dumps(record) + "\n").encode())
        except OSError as exc:
            raise CursorFileError(f"cannot save the watch position to {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the state directory for one watch at a time.

        Two watches sharing a cursor file would each save positions the other
        has not printed, so the second one is refused instead.
        """
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = self._lock_path.open("a")
        except OSError as exc:
            raise CursorFileError(f"cannot use state directory {self.state_dir}: {exc}") from exc
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WatchLockedError(
                    f"another `hfed liaison watch` is already running with {self.state_dir}"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
