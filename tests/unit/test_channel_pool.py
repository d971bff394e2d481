"""The outbox's channel pool: one channel per endpoint, replaced after a failure."""

from __future__ import annotations

import time

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


def test_renew_opens_new_channels_and_closes_the_old_after_the_grace() -> None:
    factory = _Factory()
    pool = ChannelPool(factory, grace=0.2)
    old = pool.get(ENDPOINT)
    pool.renew()
    fresh = pool.get(ENDPOINT)
    assert fresh is not old and len(factory.made) == 2
    # Calls in flight on the old channel may finish: it is still open ...
    with pytest.raises(grpc.RpcError):
        old.unary_unary("/hfp.test.Nothing/Call", None, None)(b"", timeout=0.05)
    # ... until the grace has passed (bounded wait).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            old.unary_unary("/hfp.test.Nothing/Call", None, None)(b"", timeout=0.05)
        except ValueError:
            break
        except grpc.RpcError:
            time.sleep(0.05)
    else:
        pytest.fail("the renewed-away channel was never closed")
    pool.close()
