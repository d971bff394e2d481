"""The outbox's channel pool: one channel per endpoint, replaced after a failure."""

from __future__ import annotations

import grpc
import pytest

from peers.channel import ChannelPool, insecure_channel

ENDPOINT = "127.0.0.1:9"  # never dialled: channels connect on first call only


class _Factory:
    def __init__(self) -> None:
        self.made: list[grpc.Channel] = []

    def __call__(self, endpoint: str) -> grpc.Channel:
        channel = insecure_channel(endpoint)
        self.made.append(channel)
        return channel


def test_one_channel_per_endpoint_is_shared() -> None:
    factory = _Factory()
    pool = ChannelPool(factory)
    first = pool.get(ENDPOINT)
    assert pool.get(ENDPOINT) is first
    assert pool.get("127.0.0.1:10") is not first
    assert len(factory.made) == 2
    pool.close()


def test_a_discarded_channel_is_replaced_on_next_use() -> None:
    factory = _Factory()
    pool = ChannelPool(factory)
    failed = pool.get(ENDPOINT)
    pool.discard(ENDPOINT, failed)
    fresh = pool.get(ENDPOINT)
    assert fresh is not failed and len(factory.made) == 2
    # A second thread discarding the same failed channel late keeps the new one.
    pool.discard(ENDPOINT, failed)
    assert pool.get(ENDPOINT) is fresh
    pool.close()


def test_close_closes_every_channel_and_starts_afresh() -> None:
    factory = _Factory()
    pool = ChannelPool(factory)
    channel = pool.get(ENDPOINT)
    pool.close()
    with pytest.raises(ValueError, match="closed channel"):
        channel.unary_unary("/hfp.test.Nothing/Call", None, None)(b"", timeout=0.1)
    assert pool.get(ENDPOINT) is not channel
    pool.close()
