"""Identifier formats fixed by the protocol, checked in one place, and the
types that tell one kind of id from another.

Typed ids
---------
``MemberId``, ``CaseId``, ``ReportId``, ``UpdateId`` and ``KeyId`` are
``typing.NewType``s of ``str``: at run time an id is the very string it was
(no wrapper object, no check), but ``mypy --strict`` refuses a report id
where a case id is expected, and a plain ``str`` where any id is. ``ItemId``
is the id inside a delivered item's payload, a report id or an update id
(receipts, inbound and outbox items are keyed by it). Where protocol
fields leave an id empty, the type says so: ``CaseId | Literal[""]``.

A string becomes an id once, at a boundary, by calling the type on it
(``ReportId(text)``; a tuple of them takes one ``cast``, not a call each):

- wire decoding, in ``federation.wire.convert``. Decoders only copy fields;
  the formats are checked right after, by ``check_report``,
  ``check_status_update`` and the roster's own validation, before the item
  is used. ``ForwardedItem.via_member_ids`` is typed where the servicer
  builds ``IncomingItem`` (``api.federation``) and checked by ``check_path``;
- an envelope's signer and key id: ``crypto.dsse.Envelope`` keeps plain
  strings (``crypto`` depends on nothing of ours), so
  ``core.envelope_checks.find_signing_key`` types them for its lookup;
- the caller's certificate (``api.auth.caller_member_id``) and the node's
  configuration (``node.config.NodeConfig.member_id``, validated there);
- new ids: ``new_uuid7`` returns ``str``, its callers name the kind made
  (``CaseBook.new_case_id``, ``StatusBook``);
- storage: read-side repository records (``store.status.HeldUpdate``,
  ``TrackedRecord``, ``store.outbox.OutgoingItem``...) and the ids that
  repository functions return (``store.cases.all_hashes``,
  ``store.outbox.pending_destinations``...) carry these types, so a value
  read from a row needs no wrapping; where the ORM's column type says
  ``str``, the whole list it returns takes one ``cast``. Query parameters
  take ``str`` (any id may be looked up); write-side records type the ids
  they are made from (``NewOutboxItem``, ``NewInboundItem``), except an
  envelope's signer and key id, kept as crypto has them (see above);
- requests: an API servicer types a request's case or report id where it
  reads it (``CaseId(request.case_id)``), a CLI command where it reads the
  argument (``cli.liaison.commands.case_argument``).

Everything from there inward takes the typed id; an id becomes a ``str``
again only by being used as one (a proto field, a SQL parameter, a log).
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime
from typing import NewType, TypeAlias

MemberId = NewType("MemberId", str)
"""A roster member's id (``MEMBER_ID_RE``)."""
CaseId = NewType("CaseId", str)
"""A case's id: a canonical UUID, made by the responsible member."""
ReportId = NewType("ReportId", str)
"""A report's id: a canonical UUID, made by its author."""
UpdateId = NewType("UpdateId", str)
"""A status update's id: a canonical UUID, made by the member issuing it."""
KeyId = NewType("KeyId", str)
"""A signing key's id: the lower-case hex SHA-256 of its public key."""
ItemId: TypeAlias = ReportId | UpdateId
"""The id inside a delivered item's payload: a report's or an update's."""

MEMBER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
KEY_ID_RE = re.compile(r"^[0-9a-f]{64}$")
#: Exactly what str(uuid.UUID(...)) prints: lower-case hex in 8-4-4-4-12 groups.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UNKNOWN_COUNTRY = "ZZ"


def is_member_id(text: str) -> bool:
    """True when ``text`` is a well-formed member id."""
    return MEMBER_ID_RE.fullmatch(text) is not None


def is_country(text: str) -> bool:
    """True for an upper-case ISO 3166-1 alpha-2 shaped code, ZZ included.

    The shape is checked, not membership of the ISO list: the list changes
    over time and a node must not refuse a report because its table is old.
    """
    return COUNTRY_RE.fullmatch(text) is not None


def is_key_id(text: str) -> bool:
    """True for a lower-case hex SHA-256 key id."""
    return KEY_ID_RE.fullmatch(text) is not None


def is_uuid(text: str) -> bool:
    """True for a UUID in its canonical lower-case 36-character text form.

    Only the canonical form is accepted so that one id has one spelling and
    idempotency keys compare as plain strings.
    """
    return _CANONICAL_UUID.fullmatch(text) is not None


def new_uuid7() -> str:
    """A new time-ordered UUID (version 7, RFC 9562) in canonical text form.

    Written here because the standard library only gains uuid7 in 3.14; time
    ordering keeps database indexes on ids append-mostly.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(_random_bytes(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def uuid7_time(text: str) -> datetime:
    """The creation time (to the millisecond, UTC) a UUIDv7 carries in its first 48 bits."""
    millis = int(text.replace("-", "")[:12], 16)
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


#: Bytes fetched from the OS at a time for new ids.
_RANDOM_CHUNK = 4096
_random = threading.local()


def _forget_random_bytes() -> None:
    # A forked child must not hand out the ids its parent is about to.
    _random.buffer = b""


os.register_at_fork(after_in_child=_forget_random_bytes)


def _random_bytes(count: int) -> bytes:
    """``count`` bytes from the OS's CSPRNG, read ahead in chunks per thread.

    os.urandom gives up the GIL for its system call; one call per id made
    the ingest transaction's thread queue for the GIL twice per report.
    """
    buffer: bytes = getattr(_random, "buffer", b"")
    if len(buffer) < count:
        buffer = os.urandom(_RANDOM_CHUNK)
    _random.buffer = buffer[count:]
    return buffer[:count]
