"""Reading a liaison's WatchReferrals stream in pieces, as a client that
disconnects and resumes from its last cursor does."""

from __future__ import annotations

import grpc

from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc


def watch_until_idle(
    stub: lgrpc.LiaisonServiceStub, cursor: str, count: int, idle: float = 1.5
) -> list[lpb.WatchReferralsResponse]:
    """Up to ``count`` events after ``cursor``; stops after ``idle`` seconds
    without one (the stream's deadline), or cancels once ``count`` arrived."""
    stream = stub.WatchReferrals(lpb.WatchReferralsRequest(cursor=cursor), timeout=idle)
    got: list[lpb.WatchReferralsResponse] = []
    try:
        for response in stream:
            got.append(response)
            if len(got) == count:
                stream.cancel()
                break
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    return got
