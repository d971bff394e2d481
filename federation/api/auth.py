"""Who is calling: the TLS peer's certificate mapped to a roster member."""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

import grpc

from crypto.x509ca import member_id_from_cert
from federation.core.errors import (
    NO_MEMBER_IDENTITY,
    ROLE_NOT_ALLOWED,
    UNKNOWN_MEMBER,
    PermissionDeniedError,
    UnauthenticatedError,
)
from federation.core.ids import MemberId
from federation.core.roster import Member, Role, Roster
from federation.trust import RosterHolder
from federation.wire.metadata import DEV_MEMBER_METADATA

NODE_ROLES = frozenset({Role.HOTLINE, Role.SECRETARIAT})


@functools.lru_cache(maxsize=256)
def _member_id_of(cert_pem: bytes) -> str | None:
    # Peers reconnect with the same certificate; parse each one once.
    return member_id_from_cert(cert_pem)


def caller_member_id(context: grpc.ServicerContext, *, dev_plaintext: bool) -> MemberId:
    """The member id of the caller, from its verified client certificate.

    The TLS layer has already verified the chain to the pinned network CA; a
    peer without such a certificate never gets this far.
    """
    if dev_plaintext:
        for key, value in context.invocation_metadata():
            if key == DEV_MEMBER_METADATA and isinstance(value, str):
                return MemberId(value)
        raise UnauthenticatedError(
            NO_MEMBER_IDENTITY, f"dev mode: send metadata {DEV_MEMBER_METADATA}"
        )
    certs = context.auth_context().get("x509_pem_cert")
    member_id = _member_id_of(certs[0]) if certs else None
    if member_id is None:
        raise UnauthenticatedError(NO_MEMBER_IDENTITY, "client certificate names no member")
    return MemberId(member_id)


def authorize(
    context: grpc.ServicerContext,
    roster: Roster,
    roles: Collection[Role],
    *,
    dev_plaintext: bool,
) -> Member:
    """The calling member, if it is in the roster with one of ``roles``."""
    member = roster.member(caller_member_id(context, dev_plaintext=dev_plaintext))
    if member is None:
        raise UnauthenticatedError(UNKNOWN_MEMBER, "client certificate maps to no roster member")
    if member.role not in roles:
        raise PermissionDeniedError(
            ROLE_NOT_ALLOWED, f"role {member.role.name} may not call this service"
        )
    return member


@dataclass(frozen=True, slots=True)
class Callers:
    """How a servicer tells who is calling: the roster its callers must be in,
    and whether the node runs in insecure development mode."""

    rosters: RosterHolder
    dev_plaintext: bool

    def member(self, context: grpc.ServicerContext, roles: Collection[Role]) -> Member:
        """The calling member, if it is in the current roster with one of ``roles``."""
        return authorize(context, self.rosters.roster, roles, dev_plaintext=self.dev_plaintext)

    def member_id(self, context: grpc.ServicerContext) -> str:
        """The caller's member id, whether or not the roster knows it."""
        return caller_member_id(context, dev_plaintext=self.dev_plaintext)
