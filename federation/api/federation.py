"""FederationService: thin adapter from the wire to the delivery and roster services."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import grpc
import structlog

from federation.api.auth import NODE_ROLES, Callers
from federation.api.errors import bind_caller, translate_errors
from federation.core.errors import (
    BATCH_TOO_LARGE,
    BATCH_TOO_MANY_ITEMS,
    REQUIRED_FIELD,
    ROSTER_NOT_NEWER,
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
)
from federation.core.ids import MemberId
from federation.core.limits import Limits
from federation.core.roster import RosterUpdate
from federation.intake import NO_PROOFS, DeliveryService, IncomingItem, Proofs
from federation.trust import RosterHolder, RosterRejectedError, serialize_signed_roster
from federation.wire.convert import envelope_from_proto, signed_roster_from_proto
from hfp.v1 import federation_service_pb2 as pb
from hfp.v1 import federation_service_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)


class FederationServicer(pb_grpc.FederationServiceServicer):
    """Serves peer nodes: Deliver, GetRoster, PublishRoster."""

    def __init__(
        self,
        delivery: DeliveryService,
        rosters: RosterHolder,
        limits: Limits,
        callers: Callers,
        *,
        on_roster_installed: Callable[[], None] = lambda: None,
    ) -> None:
        self._delivery = delivery
        self._rosters = rosters
        self._limits = limits
        self._callers = callers
        self._on_roster_installed = on_roster_installed

    def _caller(self, context: grpc.ServicerContext) -> MemberId:
        member = self._callers.member(context, NODE_ROLES)
        bind_caller(member.member_id)
        return member.member_id

    @translate_errors
    def Deliver(  # noqa: N802 (gRPC method name)
        self, request: pb.DeliverRequest, context: grpc.ServicerContext
    ) -> pb.DeliverResponse:
        """Verify, store and acknowledge a batch of signed items."""
        sender = self._caller(context)
        if len(request.items) > self._limits.max_batch_items:
            raise ResourceExhaustedError(
                BATCH_TOO_MANY_ITEMS,
                f"batch has {len(request.items)} items; "
                f"the limit is {self._limits.max_batch_items}",
            )
        if request.ByteSize() > self._limits.max_batch_bytes:
            raise ResourceExhaustedError(
                BATCH_TOO_LARGE, f"batch is larger than {self._limits.max_batch_bytes} bytes"
            )
        items = [
            # The path's entries become member ids here (one cast, no call per
            # entry); check_path refuses a malformed one before any use.
            IncomingItem(
                envelope_from_proto(i.envelope), cast(_Path, tuple(i.via_member_ids)), _proofs(i)
            )
            for i in request.items
        ]
        receipts = self._delivery.deliver(sender, items)
        response = pb.DeliverResponse()
        for receipt in receipts:
            response.receipts.add().MergeFromString(receipt)
        return response

    @translate_errors
    def GetRoster(  # noqa: N802
        self, request: pb.GetRosterRequest, context: grpc.ServicerContext
    ) -> pb.GetRosterResponse:
        """The node's roster when newer than the caller's."""
        self._caller(context)
        installed = self._rosters.installed
        response = pb.GetRosterResponse()
        if installed.roster.version > request.known_version:
            response.roster.MergeFromString(installed.signed_roster)
        return response

    @translate_errors
    def PublishRoster(  # noqa: N802
        self, request: pb.PublishRosterRequest, context: grpc.ServicerContext
    ) -> pb.PublishRosterResponse:
        """Install a newer threshold-signed roster and pass it on."""
        self._caller(context)
        if not request.HasField("roster"):
            raise InvalidArgumentError(REQUIRED_FIELD, "roster is required", field="roster")
        signed = serialize_signed_roster(*signed_roster_from_proto(request.roster))
        try:
            decision, version = self._rosters.offer(signed)
        except RosterRejectedError as exc:
            if exc.stale:
                raise FailedPreconditionError(ROSTER_NOT_NEWER, str(exc)) from exc
            refused = f"roster refused: {exc}"
            raise InvalidArgumentError(exc.reason, refused, field="roster") from exc
        if decision is RosterUpdate.INSTALL:
            self._on_roster_installed()
        return pb.PublishRosterResponse(version=version)


_Path = tuple[MemberId, ...]


def _proofs(item: pb.ForwardedItem) -> Proofs:
    """The hand-over proofs an item carries (most carry none)."""
    if not item.moved_by and not item.joined_receipts:
        return NO_PROOFS
    return Proofs(
        tuple(envelope_from_proto(e) for e in item.moved_by),
        tuple(envelope_from_proto(e) for e in item.joined_receipts),
    )
