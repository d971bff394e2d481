"""The node's three gRPC services: their names, and putting servicers on a server.

Kept here, with the servicers, so that the composition root (``node``)
wires the services without importing generated code itself.
"""

from __future__ import annotations

import grpc

from federation.api.federation import FederationServicer
from federation.api.hotline import HotlineServicer
from federation.api.liaison import LiaisonServicer
from hfp.v1 import (
    federation_service_pb2,
    federation_service_pb2_grpc,
    hotline_service_pb2,
    hotline_service_pb2_grpc,
    liaison_service_pb2,
    liaison_service_pb2_grpc,
)

LIAISON_SERVICE = liaison_service_pb2.DESCRIPTOR.services_by_name["LiaisonService"].full_name
HOTLINE_SERVICE = hotline_service_pb2.DESCRIPTOR.services_by_name["HotlineService"].full_name
FEDERATION_SERVICE = federation_service_pb2.DESCRIPTOR.services_by_name[
    "FederationService"
].full_name
#: The services of the node's own members and of police liaisons: their calls
#: run on the client lane, apart from FederationService's.
CLIENT_SERVICES = (HOTLINE_SERVICE, LIAISON_SERVICE)
SERVICE_NAMES = (FEDERATION_SERVICE, *CLIENT_SERVICES)


def add_services(
    server: grpc.Server,
    federation: FederationServicer,
    hotline: HotlineServicer,
    liaison: LiaisonServicer,
) -> None:
    """FederationService, HotlineService and LiaisonService on ``server``."""
    federation_service_pb2_grpc.add_FederationServiceServicer_to_server(federation, server)
    hotline_service_pb2_grpc.add_HotlineServiceServicer_to_server(hotline, server)
    liaison_service_pb2_grpc.add_LiaisonServiceServicer_to_server(liaison, server)
