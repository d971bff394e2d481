"""What a running node does so that its keys and certificates can change under it.

* Reload: on SIGHUP, and when one of the files changed (looked at every
  ``reload_check_seconds``), the TLS material and the signing keys are read
  again; a file that does not load is refused with a log line and what was
  in use stays in use.
* Signing: whenever a roster is installed, keys are reloaded or a check runs,
  the node looks whether it still has a key to sign with. Without one it
  reports NOT_SERVING for the services whose answers it must sign
  (FederationService, HotlineService) and logs why; the overall health ("")
  stays SERVING, because the process is up and still verifies, serves rosters
  and answers liaisons' reads.
* Expiry: from 30 days before the roster or the node's own certificate
  expires, a warning at start-up and then once a day.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from grpc_health.v1 import health, health_pb2

from federation.api.services import FEDERATION_SERVICE, HOTLINE_SERVICE
from federation.core.roster import Roster
from federation.intake import NodeIdentity
from federation.node.config import ConfigError, NodeConfig, load_config
from federation.node.material import MaterialError, ServerTls, load_signing_keys
from federation.runtime.clock import Clock, utc_now
from federation.trust import RosterHolder

log = structlog.get_logger(__name__)

#: Warn this long before the roster or the certificate expires.
EXPIRY_WARNING = timedelta(days=30)
#: Seconds between two expiry warnings.
EXPIRY_WARN_EVERY = 86_400.0
#: Services whose every answer carries this node's signature.
SIGNING_SERVICES = (FEDERATION_SERVICE, HOTLINE_SERVICE)

Fingerprint = tuple[tuple[str, int, int, int], ...]


class Upkeep:
    """Reloads key material, watches the node's ability to sign, warns of expiry."""

    def __init__(
        self,
        config: NodeConfig,
        config_path: Path | None,
        identity: NodeIdentity,
        rosters: RosterHolder,
        tls: ServerTls | None,
        clock: Clock = utc_now,
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._key_paths = config.signing.paths
        self._identity = identity
        self._rosters = rosters
        #: The server's TLS material (None in plaintext mode).
        self.tls = tls
        #: Called after new TLS material was taken (the outbox renews its channels).
        self.on_tls_renewed: list[Callable[[], None]] = []
        self._clock = clock
        self._health: health.HealthServicer | None = None
        #: The id of the key the node signs with, as last reported ("": none).
        self._signing_with: str | None = None
        #: Roster installs (gRPC threads) and the main thread's checks meet here.
        self._signing_lock = threading.Lock()
        self._files = self._fingerprint()
        self._next_files_check = 0.0
        self._next_expiry_warning = 0.0

    def attach(self, health_servicer: health.HealthServicer) -> None:
        """Report the signing state in ``health_servicer`` from now on."""
        self._health = health_servicer
        self._signing_with = None
        self.check_signing()

    # --- reloading -------------------------------------------------------------

    def reload(self, why: str) -> None:
        """Read the TLS material and the signing keys again."""
        log.info("reloading keys and certificates", why=why)
        self._files = self._fingerprint()
        if self.tls is not None and self.tls.reload():
            for renewed in self.on_tls_renewed:
                renewed()
        self._reload_keys()
        self.check_signing()
        self.warn_expiry()

    def _reload_keys(self) -> None:
        paths = self._configured_key_paths()
        try:
            keys = load_signing_keys(paths)
        except MaterialError as exc:
            log.error("new signing keys refused; the old stay in use", reason=str(exc))
            return
        old = [k.key_id for k in self._identity.keys]
        if [k.key_id for k in keys] != old:
            self._identity.replace_keys(keys)
            log.info("signing keys reloaded", key_ids=[k.key_id[:16] for k in keys])
        self._key_paths = paths

    def _configured_key_paths(self) -> tuple[Path, ...]:
        """The key files the configuration names now (it may list a new one)."""
        if self._config_path is None:
            return self._key_paths
        try:
            return load_config(self._config_path).signing.paths
        except ConfigError as exc:
            log.error("configuration unreadable; the signing key files stay", reason=str(exc))
            return self._key_paths

    def _fingerprint(self) -> Fingerprint:
        """Identity, modification time and size of every file a reload reads."""
        paths = list(self._key_paths)
        if self._config_path is not None:
            paths.append(self._config_path)
        if self._config.tls is not None:
            tls = self._config.tls
            paths.extend((tls.cert, tls.key, tls.ca_cert))
        return tuple(_stat(path) for path in paths)

    # --- the periodic checks ------------------------------------------------------

    def tick(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        """Run what is due: file check and reload, signing check, expiry warning."""
        now = monotonic()
        if now >= self._next_files_check:
            self._next_files_check = now + self._config.reload_check_seconds
            if self._fingerprint() != self._files:
                self.reload("files changed")
            else:
                # Key validity windows open and close with time alone.
                self.check_signing()
        if now >= self._next_expiry_warning:
            self._next_expiry_warning = now + EXPIRY_WARN_EVERY
            self.warn_expiry()

    def roster_installed(self, _roster: Roster) -> None:
        """A new roster may give or take the key this node signs with."""
        self.check_signing()

    def check_signing(self) -> None:
        """Log, and report in health, the key the node signs with when it changed
        (and why it cannot sign when it has none)."""
        with self._signing_lock:
            key = self._identity.current_key()
            key_id = key.key_id if key else ""
            if key_id != self._signing_with:
                self._signing_with = key_id
                self._report_signing(key_id)

    def _report_signing(self, key_id: str) -> None:
        if key_id:
            log.info("signing with key", key_id=key_id[:16])
        else:
            log.error(
                "this node cannot sign: it refuses new items and actions",
                reason=self._identity.why_not_signing(),
            )
        status = health_pb2.HealthCheckResponse
        if self._health is not None:
            for name in SIGNING_SERVICES:
                self._health.set(name, status.SERVING if key_id else status.NOT_SERVING)

    @property
    def can_sign(self) -> bool:
        """Whether the node had a key to sign with at the last check."""
        return self._signing_with != ""

    def warn_expiry(self) -> None:
        """A warning for the roster and the certificate if either expires soon."""
        now = self._clock()
        for what, when in self.expiries().items():
            if when is not None and when - now < EXPIRY_WARNING:
                log.warning(
                    f"{what} expires soon: replace it",
                    expires_at=when.isoformat(),
                    days_left=round((when - now) / timedelta(days=1), 1),
                )

    def certificate_not_after(self) -> datetime | None:
        """When the certificate served now expires (None in plaintext mode)."""
        return self.tls.current.not_after if self.tls else None

    def expiries(self) -> dict[str, datetime | None]:
        """When the installed roster and this node's certificate expire."""
        return {
            "roster": self._rosters.roster.expires_at,
            "TLS certificate": self.certificate_not_after(),
        }


def _stat(path: Path) -> tuple[str, int, int, int]:
    # The inode too: a file replaced by a rename may keep size and mtime.
    try:
        info = path.stat()
    except OSError:
        return (str(path), -1, -1, -1)
    return (str(path), info.st_ino, info.st_mtime_ns, info.st_size)
