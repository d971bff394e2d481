"""Who this node is, and which of its signing keys it signs with right now.

A node may hold several signing keys (one being rotated in, one on its way
out). The roster, not the node's configuration, decides which one is good:
the node signs with the newest key it holds that its installed roster lists
for it, valid at this moment and not revoked. A new roster therefore switches
the key at once, and a roster revoking the last usable key leaves the node
unable to sign anything (``NoSigningKeyError``) rather than signing with a
key its peers would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime

from crypto.dsse import Envelope, sign_envelope, sign_many
from crypto.keys import SigningKey
from federation.core.errors import NO_SIGNING_KEY, UnavailableError
from federation.core.ids import KeyId, MemberId
from federation.core.roster import MemberKey, Roster
from federation.runtime.clock import Clock, utc_now

#: Orders keys without a not_before before every dated one.
_UNDATED = datetime.min.replace(tzinfo=UTC)


class NoSigningKeyError(UnavailableError):
    """The roster lists no key this node holds as usable now: it signs nothing.

    UNAVAILABLE because it is the node's state, not the caller's request, and
    it ends (for the same call) once a roster or key file gives the node a key.
    """

    def __init__(self, public_message: str) -> None:
        super().__init__(NO_SIGNING_KEY, public_message)


class NodeIdentity:
    """This node's member id and signing keys; picks the key to sign with.

    Without a roster source (tests, benchmarks) the first key is always used.
    """

    def __init__(
        self,
        member_id: MemberId,
        keys: SigningKey | Sequence[SigningKey],
        roster: Callable[[], Roster] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.member_id = member_id
        self._keys: tuple[SigningKey, ...] = (
            (keys,) if isinstance(keys, SigningKey) else tuple(keys)
        )
        if not self._keys:
            raise ValueError("a node needs at least one signing key")
        self._roster = roster
        self._clock = clock

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every signing key this node holds, usable or not."""
        return self._keys

    def replace_keys(self, keys: Sequence[SigningKey]) -> None:
        """Hold ``keys`` from now on (a reload); signatures in progress finish
        with the key they started with."""
        if not keys:
            raise ValueError("a node needs at least one signing key")
        # One attribute assignment: readers see the old tuple or the new one,
        # never a mix, so no lock is needed (readers never took one).
        self._keys = tuple(keys)

    def current_key(self) -> SigningKey | None:
        """The key to sign with now, or None when the roster allows none of ours."""
        held = self._keys
        if self._roster is None:
            return held[0]
        member = self._roster().member(self.member_id)
        if member is None:
            return None
        now = self._clock()
        usable = [
            (_start(listed), index, key)
            for index, key in enumerate(held)
            if (listed := member.keys.get(KeyId(key.key_id))) is not None
            and not listed.revoked
            and listed.covers(now)
        ]
        # Newest by validity start; among equals, the key configured last.
        return max(usable, key=lambda entry: entry[:2])[2] if usable else None

    def why_not_signing(self) -> str | None:
        """Why the node cannot sign now (for logs and health), or None if it can."""
        if self.current_key() is not None:
            return None
        return (
            f"the installed roster lists none of this node's {len(self._keys)} signing key(s) "
            "as valid now and not revoked"
        )

    @property
    def signing_key(self) -> SigningKey:
        """The key to sign with now; NoSigningKeyError when there is none."""
        key = self.current_key()
        if key is None:
            raise NoSigningKeyError(
                "this node has no valid signing key (revoked or not yet listed in its "
                "roster); it signs nothing until it gets one"
            )
        return key

    def require_key(self) -> None:
        """Raise NoSigningKeyError now rather than halfway through a batch."""
        _ = self.signing_key

    def sign(self, payload_type: str, payload: bytes) -> Envelope:
        """Sign a payload as this node."""
        return sign_envelope(self.signing_key, self.member_id, payload_type, payload)

    def sign_many(
        self, payload_type: str, payloads: Sequence[bytes], executor: Executor | None = None
    ) -> list[Envelope]:
        """Sign many payloads as this node, on ``executor``'s threads when given."""
        return sign_many(self.signing_key, self.member_id, payload_type, payloads, executor)


def _start(key: MemberKey) -> datetime:
    return key.not_before or _UNDATED
