"""A base for server interceptors that wrap the method handlers of some services.

A gRPC server interceptor sees only the method name and metadata, not the
TLS peer or the decoded request; wrapping the method handler puts our code
in the worker thread, with the call's context. Each method is wrapped once
(this runs on gRPC's polling thread for every call) and the wrapper reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

#: The attribute by which gRPC runs a behavior on a pool of its own (the client lane).
_POOL = "experimental_thread_pool"

#: A method's behavior: (request, context) -> response or response iterator.
Behavior = Callable[[Any, grpc.ServicerContext], Any]
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:  # not subscriptable at run time
    Handler = grpc.RpcMethodHandler


class HandlerWrapper(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps the handlers of ``services`` (full names) with ``wrap``; others pass."""

    def __init__(self, services: Collection[str]) -> None:
        self._services = frozenset(services)
        #: Per (method, inner handler): an inner wrapper may hand out more than
        #: one handler for a method (admission's refusing twin while the client
        #: lane is full), and each keeps its own wrapper.
        self._wrapped: dict[tuple[str, int], tuple[Handler, Handler]] = {}
        self._lock = threading.Lock()

    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler to use for ``method`` instead of ``handler``."""
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """The service's handler, wrapped when the service is one of ours."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method[1:].partition("/")[0] not in self._services:
            return handler
        key = (method, id(handler))
        cached = self._wrapped.get(key)  # a hit needs no lock: entries are only replaced
        if cached is None or cached[0] is not handler:
            with self._lock:
                cached = (handler, self.wrap(handler, method))
                self._wrapped[key] = cached
        return cached[1]


def keep_pool(inner: Behavior, outer: Behavior) -> Behavior:
    """``outer``, wrapping ``inner``, runs on the thread pool ``inner`` was given."""
    pool = getattr(inner, _POOL, None)
    if pool is not None:
        setattr(outer, _POOL, pool)
    return outer


def ended(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """The code the call ended with: the one set or aborted with, else ``default``."""
    code: grpc.StatusCode | None = context.code()  # type: ignore[attr-defined]
    return code if code is not None else default
