"""Node configuration: one TOML file, validated at start with precise messages."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from federation.core.errors import SetupError
from federation.core.ids import MEMBER_ID_RE, MemberId
from federation.runtime.faultpoints import CRASH_ENV


class ConfigError(SetupError):
    """The configuration file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Section):
    """Mutual TLS material (PEM files)."""

    cert: Path
    key: Path
    ca_cert: Path


class SigningConfig(_Section):
    """The node's Ed25519 signing keys (PKCS#8 PEM files).

    ``key`` is the classic single key; ``keys`` lists more (a key being
    rotated in). The node signs with the newest of them that its roster
    lists as valid and not revoked (federation.intake.identity).
    """

    key: Path | None = None
    keys: list[Path] = []

    @model_validator(mode="after")
    def _at_least_one(self) -> SigningConfig:
        if self.key is None and not self.keys:
            raise ValueError("give the signing key as key = ... or keys = [...]")
        return self

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every configured key file, ``key`` first."""
        return (*((self.key,) if self.key else ()), *self.keys)


class TrustConfig(_Section):
    """Pinned network root keys and the bootstrap roster."""

    root_public_keys: list[str] = Field(min_length=1)
    threshold: int = Field(ge=1)
    roster: Path | None = None


class LimitsConfig(_Section):
    """Overrides of the protocol limits (rarely needed)."""

    max_batch_items: int = Field(default=1000, ge=1, le=1000)
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=8 * 1024 * 1024)


class OutboxConfig(_Section):
    """Delivery to peers: batch size and the retry schedule of an unreachable peer."""

    batch_size: int = Field(default=500, ge=1, le=1000)
    #: Batches in flight to one peer at a time (1 keeps a strict queue order).
    lanes: int = Field(default=2, ge=1, le=4)
    backoff_base_seconds: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_seconds: float = Field(default=60.0, gt=0, le=3600)


class DedupConfig(_Section):
    """Known-content linking."""

    #: PDQ hashes within this Hamming distance link cases (protocol default 31).
    pdq_threshold: int = Field(default=31, ge=0, le=64)


class ScaleOutConfig(_Section):
    """Several node processes of one member over one PostgreSQL database
    (docs/operations.md, "Run several node processes")."""

    #: Bind the listen port with SO_REUSEPORT, so that every process of the
    #: member listens on the same address and the kernel spreads incoming
    #: connections over them. PostgreSQL only: a SQLite file has one process.
    reuse_port: bool = False
    #: How often each process reads the other processes' new cases (their
    #: PDQ hashes into its index; their events to its liaison streams).
    follow_seconds: float = Field(default=0.5, ge=0.05, le=60.0)


class TakedownConfig(_Section):
    """Deadlines for takedowns."""

    #: A case in NOTICE_SENT for longer than this is overdue (logged and
    #: flagged so an operator can repeat the notice).
    overdue_after_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    #: How often the node looks for newly overdue takedowns.
    check_every_seconds: float = Field(default=60.0, ge=0.1, le=86400)


class AdmissionConfig(_Section):
    """Per-member limits on incoming calls, so one member cannot starve the others.

    A refused call gets RESOURCE_EXHAUSTED at once; see docs/admission.md.
    Health checks and reflection are never limited.
    """

    #: Unary calls (Deliver, GetRoster, SubmitReport...) one member may have in
    #: flight at the same time.
    calls_in_flight_per_member: int = Field(default=8, ge=1, le=256)
    #: WatchReferrals streams one member may hold open at the same time.
    streams_per_member: int = Field(default=2, ge=1, le=64)
    #: Streams open at the same time, all members together. Each open stream
    #: holds a thread of the client services, so this must stay below
    #: ``client_threads`` (unset: half of it), leaving threads for unary calls.
    streams_total: int | None = Field(default=None, ge=1, le=255)
    #: Worker threads of HotlineService and LiaisonService, a pool apart from
    #: FederationService's ``worker_threads`` (unset: as many as those), so
    #: that no flood of those calls can take or queue ahead of a peer's.
    client_threads: int | None = Field(default=None, ge=2, le=256)
    #: Calls to HotlineService and LiaisonService running or waiting for a
    #: thread at once, all members together (unset: ``client_threads``); the
    #: next is refused at once with a retry delay.
    client_calls_total: int | None = Field(default=None, ge=1, le=4096)
    #: Pages of cases (ListReferrals, ListCases, ListAuthoredReports) built at
    #: once, node-wide: each is much Python work, and Python runs one thread
    #: at a time.
    heavy_reads_total: int = Field(default=2, ge=1, le=64)
    #: Sustained calls per second per member (a token bucket), every kind of
    #: call counted, refused ones included.
    calls_per_second: float = Field(default=50.0, gt=0, le=10_000)
    #: Calls a member may make in a burst above the sustained rate.
    burst: int = Field(default=100, ge=1, le=100_000)
    #: Largest request metadata (all headers together) the node reads; a
    #: larger call is refused by gRPC with RESOURCE_EXHAUSTED.
    max_metadata_bytes: int = Field(default=16 * 1024, ge=4 * 1024, le=64 * 1024)
    #: The node pings an idle connection this often and drops it when no
    #: answer comes within ``keepalive_timeout_seconds``: a vanished client
    #: then releases its streams instead of holding them for ever.
    keepalive_seconds: float = Field(default=60.0, ge=1.0, le=7200.0)
    keepalive_timeout_seconds: float = Field(default=20.0, ge=1.0, le=600.0)


class MetricsConfig(_Section):
    """Prometheus metrics endpoint (off when ``listen`` is empty)."""

    listen: str = ""


class TracingConfig(_Section):
    """OpenTelemetry tracing of each report's path, across nodes (off by default;
    docs/operations.md, "Tracing"). Spans name the node by its member id."""

    enabled: bool = False
    #: otlp: to an OpenTelemetry collector over gRPC (needs the ``otlp`` extra);
    #: console: to standard output; none: made but not exported.
    exporter: Literal["otlp", "console", "none"] = "otlp"
    #: The collector's OTLP/gRPC address, e.g. http://127.0.0.1:4317 (empty:
    #: OTEL_EXPORTER_OTLP_ENDPOINT, else the exporter's default, localhost:4317).
    endpoint: str = ""
    #: Share of traces kept, decided on the trace id (the same at every node
    #: with the same ratio, so a kept trace is kept whole).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


#: ``hold-calls``: a call carrying the metadata ``x-hfed-test-hold-ms`` stays in
#: flight that long (at most 30 s) once admitted, so that tests can fill the
#: admission limits deterministically.
#: The section 10 faults: ``accept-non-owner-update`` (a reporter takes status
#: updates about its reports from any member), ``replay-receipt-unchecked``
#: (a stored receipt answers a repeat before the sender checks) and
#: ``apply-held-unchecked`` (held updates skip the transition table).
Fault = Literal[
    "skip-signature-check",
    "accept-stale-roster",
    "hold-calls",
    "accept-non-owner-update",
    "replay-receipt-unchecked",
    "apply-held-unchecked",
]
FAULTS_ENV = "HFED_ENABLE_TEST_FAULTS"


class TestingConfig(_Section):
    """Deliberate faults, so that the conformance harness can be shown to catch
    them. Honoured only when the environment variable HFED_ENABLE_TEST_FAULTS=1
    is also set; a node asked for faults without it refuses to start."""

    faults: list[Fault] = []


class LogConfig(_Section):
    """Logging."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class NodeConfig(_Section):
    """Everything a node needs to start."""

    member_id: MemberId
    listen: str = "127.0.0.1:7100"
    database_url: str
    reflection: bool = True
    #: DEVELOPMENT ONLY: serve plaintext without TLS; callers name themselves.
    insecure_plaintext: bool = False
    grace_seconds: float = Field(default=10.0, ge=0, le=300)
    worker_threads: int = Field(default=16, ge=2, le=256)
    #: How often to ask peers for a newer roster (pushes are immediate).
    roster_pull_seconds: float = Field(default=60.0, ge=1.0, le=86400.0)
    #: How often to look whether the TLS or signing key files changed (and
    #: reload them if so); SIGHUP reloads at once.
    reload_check_seconds: float = Field(default=30.0, ge=0.5, le=86400.0)
    tls: TlsConfig | None = None
    signing: SigningConfig
    trust: TrustConfig
    limits: LimitsConfig = LimitsConfig()
    admission: AdmissionConfig = AdmissionConfig()
    outbox: OutboxConfig = OutboxConfig()
    dedup: DedupConfig = DedupConfig()
    takedown: TakedownConfig = TakedownConfig()
    scale_out: ScaleOutConfig = ScaleOutConfig()
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    testing: TestingConfig = TestingConfig()
    log: LogConfig = LogConfig()

    @field_validator("member_id")
    @classmethod
    def _member_id(cls, value: str) -> MemberId:
        if not MEMBER_ID_RE.fullmatch(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9-]{1,62}$")
        return MemberId(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port")
        return value

    @property
    def client_threads(self) -> int:
        """Worker threads of HotlineService and LiaisonService."""
        return self.admission.client_threads or self.worker_threads

    @property
    def shares_database(self) -> bool:
        """True when other node processes may use the same database (PostgreSQL)."""
        return self.database_url.startswith("postgresql")

    @model_validator(mode="after")
    def _reuse_port_needs_postgresql(self) -> NodeConfig:
        if self.scale_out.reuse_port and not self.shares_database:
            raise ValueError(
                "scale_out.reuse_port needs a PostgreSQL database_url: a SQLite file "
                "is used by one node process only"
            )
        return self

    @model_validator(mode="after")
    def _streams_leave_threads(self) -> NodeConfig:
        total = self.admission.streams_total
        if total is not None and total >= self.client_threads:
            raise ValueError(
                f"admission.streams_total ({total}) must be below admission.client_threads "
                f"({self.client_threads}; unset: worker_threads): open streams hold threads, "
                "and unary calls need some"
            )
        return self


def _resolve(base: Path, raw: dict[str, object]) -> None:
    """Make relative file paths relative to the config file's directory."""
    for section, keys in (
        ("tls", ("cert", "key", "ca_cert")),
        ("signing", ("key",)),
        ("trust", ("roster",)),
    ):
        table = raw.get(section)
        if isinstance(table, dict):
            for key in keys:
                if isinstance(table.get(key), str):
                    table[key] = str(base / table[key])
    signing = raw.get("signing")
    if isinstance(signing, dict) and isinstance(signing.get("keys"), list):
        signing["keys"] = [str(base / k) if isinstance(k, str) else k for k in signing["keys"]]
    url = raw.get("database_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        raw["database_url"] = "sqlite:///" + str(base / url.removeprefix("sqlite:///"))


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


#: Environment variables that configure the CLI, not a node.
_NOT_SETTINGS = frozenset(
    {
        "HFED_CONFIG",
        "HFED_DEVNET",
        "HFED_MEMBER",
        "HFED_LIAISON_PROFILE",
        FAULTS_ENV,
        CRASH_ENV,  # a test crash point (federation.runtime.faultpoints), not a setting
        # Switches of the test suite, inherited by the nodes that tests start.
        "HFED_LONG_TESTS",
        "HFED_SHARED_OUTBOX_ITEMS",
    }
)
ENV_PREFIX = "HFED_"


def _env_value(text: str) -> object:
    """An environment value: JSON when it parses as such (lists, numbers, booleans)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_env_overrides(raw: dict[str, object], environ: Mapping[str, str]) -> list[str]:
    """Overlay HFED_SECTION__KEY=value variables on the file's settings.

    Written here rather than with pydantic-settings because the overrides must
    go through the same path resolution and strict unknown-key checks as the
    file, and errors must name the variable. Returns the variables applied.
    """
    applied = []
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = name.removeprefix(ENV_PREFIX).lower().split("__")
        table = raw
        for part in path[:-1]:
            child = table.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {part} is not a table")
            table = child
        table[path[-1]] = _env_value(text)
        applied.append(name)
    return applied


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read and validate a node configuration file, with environment overrides.

    Any setting can be overridden by HFED_<KEY> or HFED_<SECTION>__<KEY>
    (e.g. HFED_DATABASE_URL, HFED_OUTBOX__BATCH_SIZE=200).
    """
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    applied = apply_env_overrides(raw, os.environ if environ is None else environ)
    _resolve(path.resolve().parent, raw)
    try:
        config = NodeConfig.model_validate(raw)
    except ValidationError as exc:
        source = f" (with environment overrides {', '.join(applied)})" if applied else ""
        raise ConfigError(f"{path}{source} has invalid settings:\n{_describe(exc)}") from exc
    if config.testing.faults and os.environ.get(FAULTS_ENV) != "1":
        raise ConfigError(
            f"{path}: [testing] faults are set but {FAULTS_ENV}=1 is not: refusing to run a "
            "deliberately broken node by accident"
        )
    if config.tls is None and not config.insecure_plaintext:
        raise ConfigError(f"{path}: [tls] is required (or insecure_plaintext = true for dev)")
    return config
