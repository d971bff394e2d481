"""``hfed ca``, ``hfed root``, ``hfed member``, ``hfed node`` and ``hfed keys``:
the commands each party of a real network runs on its own machine.

Only public files travel between parties (requests, CSRs, certificates,
signatures, rosters, trust.toml); see docs/operations.md for the steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from crypto.errors import CertificateError
from crypto.x509ca import member_id_from_cert
from federation.network import OperationsError
from federation.network import parties as p
from federation.network.nodefile import DATA_DIR, NODE_FILE, NodeFiles, node_toml
from federation.network.request import REQUEST_FILE, MembershipRequest, RoleName
from federation.network.source import RosterSource
from federation.network.trustfile import TRUST_FILE, TrustFile

F = TypeVar("F", bound=Callable[..., Any])
IN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
IN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
OUT_DIR = click.Path(file_okay=False, path_type=Path)
OUT_FILE = click.Path(dir_okay=False, path_type=Path)


def needs(flag: str, dest: str | None, kind: Any, help: str) -> Callable[[F], F]:
    """A required option (``dest``: its parameter name, when not the flag's)."""
    names = (flag, dest) if dest else (flag,)
    return click.option(*names, required=True, type=kind, help=help)


def config_needed(help: str = "The node's node.toml") -> Callable[[F], F]:
    """The required --config option; HFED_CONFIG supplies it when not given."""
    return click.option(
        "--config",
        "config_path",
        required=True,
        type=IN_FILE,
        envvar="HFED_CONFIG",
        help=f"{help} (or set HFED_CONFIG).",
    )


def refusing(command: F) -> F:
    """Show an operator error as one line and exit 1 (never a traceback)."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except OperationsError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(
                f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")
            ) from exc

    return run  # type: ignore[return-value]


def wrote(paths: Iterable[Path], secret: Iterable[Path] = ()) -> None:
    """Say which files a command wrote, marking the secret ones."""
    private = set(secret)
    for path in paths:
        click.echo(
            f"wrote {path}" + ("  (secret, mode 0600: never copy it)" if path in private else "")
        )


# --- the network CA ------------------------------------------------------------


@click.group()
def ca() -> None:
    """The network CA (kept by the secretariat, offline)."""


@ca.command("init")
@click.argument("directory", type=OUT_DIR)
@click.option("--network-name", required=True, help="Name of the network, used in the CA's name.")
@refusing
def ca_init(directory: Path, network_name: str) -> None:
    """Make the CA key (ca.key, secret) and certificate (ca.pem) in DIRECTORY."""
    written = p.init_ca(directory, f"{network_name} network CA")
    wrote(written, secret=[directory / p.CA_KEY])
    click.echo("publish ca.pem (and name it in trust.toml); keep ca.key offline")


@ca.command("issue")
@needs("--ca", "ca_dir", IN_DIR, "Directory holding ca.pem and ca.key.")
@click.argument("csr", type=IN_FILE)
@click.option("--member", "member_id", required=True, help="The member the certificate is for.")
@needs("--roster", "roster_toml", IN_FILE, "The roster source (roster.toml).")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Host name or IP the certificate is valid for (repeat; default: the CSR's).",
)
@click.option(
    "--days", default=825, show_default=True, type=click.IntRange(1, 3650), help="Validity."
)
@needs("--out", None, OUT_FILE, "Where to write the certificate (PEM).")
@refusing
def ca_issue(
    ca_dir: Path,
    csr: Path,
    member_id: str,
    roster_toml: Path,
    hosts: tuple[str, ...],
    days: int,
    out: Path,
) -> None:
    """Issue a member certificate for CSR (a tls.csr from `hfed member init`).

    Refuses a CSR whose member id is malformed, is not --member, or is not in
    the roster source.
    """
    source = RosterSource.load(roster_toml)
    order = p.Issue(csr.read_bytes(), member_id, hosts, days)
    cert = p.issue(p.load_ca(ca_dir), order, source)
    p.refuse_existing(out)
    out.write_bytes(cert)
    wrote([out])
    click.echo(f"send it to {member_id}: it goes beside its tls.key as tls.pem")


# --- root keys -----------------------------------------------------------------


@click.group()
def root() -> None:
    """Root keys: each holder makes and keeps one, offline."""


@root.command("keygen")
@click.argument("out", type=OUT_FILE)
@refusing
def root_keygen(out: Path) -> None:
    """Make one root key at OUT (PKCS#8 PEM, secret); print its public key and key id."""
    key = p.root_keygen(out)
    wrote([out], secret=[out])
    click.echo(f"public key: {key.public_key.hex()}")
    click.echo(f"key id:     {key.key_id}")
    click.echo("send the public key to the secretariat for trust.toml")


@ca.command("trust")
@needs("--ca", "ca_dir", IN_DIR, "Directory holding ca.pem.")
@click.option(
    "--root-public-key",
    "keys",
    multiple=True,
    required=True,
    help="A root public key (hex, from `hfed root keygen`); repeat for each.",
)
@needs("--threshold", None, int, "How many roots must sign a roster (K).")
@refusing
def ca_trust(ca_dir: Path, keys: tuple[str, ...], threshold: int) -> None:
    """Write trust.toml beside ca.pem from the root holders' public keys.

    Publish trust.toml and ca.pem together: every node pins them.
    """
    out = ca_dir / TRUST_FILE
    trust = TrustFile(tuple(keys), threshold, ca_dir / p.CA_CERT)
    trust.anchor  # noqa: B018 (refuses bad keys and an unreachable threshold)
    p.refuse_existing(out)
    trust.save(out)
    wrote([out])


# --- members -------------------------------------------------------------------


@click.group()
def member() -> None:
    """A member's own keys and its membership request."""


@member.command("init")
@click.argument("directory", type=OUT_DIR)
@click.option("--member", "member_id", required=True, help="The member id (a-z, 0-9, -).")
@click.option("--role", required=True, type=click.Choice(["hotline", "liaison", "secretariat"]))
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="Country code (repeat).")
@click.option("--endpoint", default="", help="HOST:PORT peers call (hotline, secretariat).")
@click.option(
    "--host", "hosts", multiple=True, help="Host name or IP for the TLS certificate (repeat)."
)
@click.option("--display-name", default="", help="The organisation's name.")
@refusing
def member_init(
    directory: Path,
    member_id: str,
    role: str,
    jurisdictions: tuple[str, ...],
    endpoint: str,
    hosts: tuple[str, ...],
    display_name: str,
) -> None:
    """Make signing.pem (not for liaisons), tls.key, tls.csr and request.toml in DIRECTORY.

    Send request.toml and tls.csr to the secretariat; the certificate it
    issues goes beside them as tls.pem.
    """
    hosts = hosts or _hosts(endpoint)
    wanted = p.Membership(
        member_id, cast(RoleName, role), jurisdictions, endpoint, hosts, display_name
    )
    written = p.init_member(directory, wanted)
    wrote(written, secret=[directory / p.SIGNING_KEY, directory / p.TLS_KEY])
    click.echo("send request.toml and tls.csr to the secretariat")


def _hosts(endpoint: str) -> tuple[str, ...]:
    host = endpoint.rpartition(":")[0]
    return (host,) if host else ()


# --- nodes ---------------------------------------------------------------------


@click.group()
def node() -> None:
    """A member's node."""


@node.command("init")
@click.argument("directory", type=OUT_DIR)
@needs("--member-dir", None, IN_DIR, "The directory of `hfed member init`.")
@needs("--trust", "trust_toml", IN_FILE, "The network's trust.toml.")
@needs("--roster", "roster_bin", IN_FILE, "A signed roster (roster.bin) listing the member.")
@needs("--cert", None, IN_FILE, "The member's certificate (tls.pem).")
@click.option("--listen", required=True, help="HOST:PORT the node binds.")
@refusing
def node_init(
    directory: Path, member_dir: Path, trust_toml: Path, roster_bin: Path, cert: Path, listen: str
) -> None:
    """Write DIRECTORY/node.toml and the data directory for `hfed serve`."""
    from federation.node.config import ConfigError, load_config

    request = MembershipRequest.load(member_dir / REQUEST_FILE)
    trust = TrustFile.load(trust_toml)
    _check_node_material(request, trust, roster_bin, cert, member_dir)
    target = directory / NODE_FILE
    p.refuse_existing(target)
    (directory / DATA_DIR).mkdir(parents=True, exist_ok=True)
    files = NodeFiles(member_dir, trust, roster_bin, cert)
    target.write_text(node_toml(directory, request.member_id, listen, files))
    try:
        load_config(target, environ={})
    except ConfigError as exc:
        target.unlink()
        raise OperationsError(str(exc).splitlines()[0]) from exc
    wrote([target, directory / DATA_DIR])
    click.echo(f"start it with: hfed serve --config {target}")


def _check_node_material(
    request: MembershipRequest, trust: TrustFile, roster_bin: Path, cert: Path, member_dir: Path
) -> None:
    """The certificate, roster and key must all be this member's, or the node would not work."""
    from federation.trust.holder import RosterRejectedError, verify_signed_roster

    if request.role == "liaison":
        raise OperationsError("a police liaison runs no node (use `hfed liaison`)")
    try:
        cert_member = member_id_from_cert(cert.read_bytes())
    except CertificateError as exc:
        raise OperationsError(f"{cert}: {exc}") from exc
    if cert_member != request.member_id:
        raise OperationsError(f"{cert} is for {cert_member!r}, not {request.member_id!r}")
    try:
        roster = verify_signed_roster(roster_bin.read_bytes(), trust.anchor).roster
    except RosterRejectedError as exc:
        raise OperationsError(f"{roster_bin}: {exc.public_message}") from exc
    listed = roster.members.get(request.member_id)  # type: ignore[call-overload]
    if listed is None:
        raise OperationsError(f"{roster_bin} does not list {request.member_id}")
    if request.key_id not in listed.keys:
        raise OperationsError(f"{roster_bin} does not list the signing key in {member_dir}")


# --- key rotation --------------------------------------------------------------


@click.group()
def keys() -> None:
    """A node's signing keys."""


@keys.command("rotate")
@config_needed()
@needs("--out", None, OUT_DIR, "Directory for the new signing.pem and request.toml.")
@refusing
def keys_rotate(config_path: Path, out: Path) -> None:
    """Make a new signing key (OUT/signing.pem), list it in the node's
    [signing] keys, and write OUT/request.toml for the secretariat.

    The node keeps signing with its current key until a roster listing the
    new one is installed, then switches by itself (it re-reads node.toml on
    SIGHUP and when the file changes). Old items keep verifying with the old
    key, which stays in the roster (docs/operations.md).
    """
    from federation.network.nodefile import add_signing_key

    base = _own_request(config_path)
    written = p.new_key_request(out, base)
    wrote(written, secret=[out / p.SIGNING_KEY])
    listed = add_signing_key(config_path, out / p.SIGNING_KEY)
    click.echo(f"added {listed} to [signing] keys in {config_path}")
    click.echo("send request.toml to the secretariat (`hfed roster add`); the node switches")
    click.echo("to the new key once a roster listing it is installed")


def _own_request(config_path: Path) -> MembershipRequest:
    """The node's roster entry as a request (the new key is filled in after)."""
    from federation.cli.connect import config_for
    from federation.network.ceremony import read_signed

    config = config_for(config_path, None, None)
    if config.trust.roster is None:
        raise OperationsError(f"{config_path} names no roster file ([trust] roster)")
    roster = read_signed(config.trust.roster.read_bytes())[0]
    entry = roster.member(config.member_id)
    if entry is None:
        raise OperationsError(f"the node's roster does not list {config.member_id}")
    return MembershipRequest.model_construct(
        member_id=entry.member_id,
        display_name=entry.display_name,
        role=entry.role.name.lower(),
        jurisdictions=tuple(sorted(entry.jurisdictions)),
        endpoint=entry.endpoint,
        signing_public_key="",
        key_id="",
    )


COMMANDS = (ca, root, member, node, keys)
