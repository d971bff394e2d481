"""Separate parties forming a network with the `hfed` operator commands.

Each party has its own directory; the only files that cross between them are
public ones, copied with :meth:`Formation.send`. The CLI runs in-process
through click's CliRunner.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from federation.cli.main import cli

ROOTS = ("root-1", "root-2", "root-3")
THRESHOLD = 2
#: Member id -> (role, jurisdictions). The secretariat is the fallback.
MEMBERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "secretariat": ("secretariat", ()),
    "hotline-dk": ("hotline", ("DK",)),
    "hotline-nl": ("hotline", ("NL",)),
    "police-dk": ("liaison", ("DK",)),
}
#: Files that may travel between parties.
PUBLIC = re.compile(
    r"(request\.toml|tls\.csr|tls\.pem|ca\.pem|trust\.toml|roster\.(unsigned|bin)|.*\.sig)$"
)


def hfed(*args: object, ok: bool = True, input: str | None = None) -> Result:
    """Run one hfed command; with ``ok``, fail the test unless it succeeded."""
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def refused(*args: object) -> str:
    """Run a command that must refuse: exit 1, one line of reason, no traceback."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@dataclass
class Formation:
    """Party directories under ``base`` and the public keys the roots announced."""

    base: Path
    endpoints: dict[str, str]
    root_public_keys: list[str] = field(default_factory=list)
    #: Member id -> (role, jurisdictions) of the parties that take part.
    members: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=lambda: dict(MEMBERS))

    def home(self, party: str) -> Path:
        """A party's own directory."""
        path = self.base / party
        path.mkdir(parents=True, exist_ok=True)
        return path

    def send(self, source: Path, party: str, name: str | None = None) -> Path:
        """Copy one public file into another party's directory."""
        assert PUBLIC.search(name or source.name), f"{source} is not a public file"
        target = self.home(party) / (name or source.name)
        shutil.copyfile(source, target)
        return target

    def bump_version(self) -> int:
        """The secretariat raises its roster source's version; the new version."""
        source = self.home("office") / "roster.toml"
        lines = source.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("version = "))
        version = int(lines[at].split("=")[1]) + 1
        lines[at] = f"version = {version}"
        source.write_text("\n".join(lines) + "\n")
        return version

    # --- the steps, in order --------------------------------------------------

    def make_roots(self) -> None:
        """Each root holder makes its key and announces the public half."""
        for holder in ROOTS:
            output = hfed("root", "keygen", self.home(holder) / "root.pem").output
            self.root_public_keys.append(re.search(r"public key: ([0-9a-f]{64})", output)[1])  # type: ignore[index]

    def make_ca(self) -> Path:
        """The secretariat makes the CA and writes trust.toml."""
        ca = self.home("office") / "ca"
        hfed("ca", "init", ca, "--network-name", "Test")
        keys = [arg for k in self.root_public_keys for arg in ("--root-public-key", k)]
        hfed("ca", "trust", "--ca", ca, *keys, "--threshold", THRESHOLD)
        return ca

    def make_member(self, member_id: str) -> Path:
        """A member makes its keys and request, and sends them to the secretariat."""
        role, countries = self.members[member_id]
        directory = self.home(member_id) / "member"
        args = ["member", "init", directory, "--member", member_id, "--role", role]
        args += [a for c in countries for a in ("--jurisdiction", c)]
        if role != "liaison":
            args += ["--endpoint", self.endpoints[member_id]]
        hfed(*args, "--host", "127.0.0.1", "--display-name", member_id.title())
        inbox = self.home("office") / "inbox" / member_id
        inbox.mkdir(parents=True, exist_ok=True)
        for name in ("request.toml", "tls.csr"):
            self.send(directory / name, f"office/inbox/{member_id}")
        return directory

    def admit(self, member_id: str) -> None:
        """The secretariat adds the request and issues the certificate; it goes back."""
        sec = self.home("office")
        inbox = sec / "inbox" / member_id
        hfed("roster", "add", sec / "roster.toml", inbox / "request.toml")
        hfed(
            "ca", "issue", "--ca", sec / "ca", inbox / "tls.csr", "--member", member_id,
            "--roster", sec / "roster.toml", "--out", inbox / "tls.pem",
        )  # fmt: skip
        self.send(inbox / "tls.pem", f"{member_id}/member")

    def ceremony(
        self, signers: tuple[str, ...] = ROOTS[:THRESHOLD], previous: bool = False
    ) -> Path:
        """Build, have ``signers`` sign offline, assemble: the secretariat's roster.bin."""
        sec = self.home("office")
        build = ["roster", "build", sec / "roster.toml", "--out", sec / "roster.unsigned"]
        hfed(*build, *(["--previous", sec / "roster.bin"] if previous else []))
        signatures = []
        for holder in signers:
            unsigned = self.send(sec / "roster.unsigned", holder)
            sig = self.home(holder) / f"{holder}.sig"
            sig.unlink(missing_ok=True)
            hfed(
                "roster",
                "sign",
                unsigned,
                "--root-key",
                self.home(holder) / "root.pem",
                "--out",
                sig,
            )
            signatures.append(self.send(sig, "office"))
        out = sec / "roster.bin"
        hfed(
            "roster",
            "assemble",
            sec / "roster.unsigned",
            *signatures,
            "--trust",
            sec / "ca" / "trust.toml",
            "--out",
            out,
        )
        return out

    def hand_out(self, member_id: str) -> None:
        """The network's public files go to a member."""
        sec = self.home("office")
        for path in (sec / "ca" / "ca.pem", sec / "ca" / "trust.toml", sec / "roster.bin"):
            self.send(path, member_id)


def form(
    base: Path,
    endpoints: dict[str, str],
    members: dict[str, tuple[str, tuple[str, ...]]] = MEMBERS,
) -> Formation:
    """A whole network formed from nothing, ending with roster.bin at every member."""
    formation = Formation(base, endpoints, members=dict(members))
    formation.make_roots()
    formation.make_ca()
    for member_id in members:
        formation.make_member(member_id)
        formation.admit(member_id)
    formation.ceremony()
    for member_id in members:
        formation.hand_out(member_id)
    return formation
