"""The console's web application: its routes, static files and headers.

Starlette serves the pages (Jinja2 templates, autoescaped) and the package's
own static files (``static/``: nothing is loaded from anywhere else).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from federation.console import (
    account_pages,
    case_pages,
    operations_pages,
    ours_pages,
    stats_pages,
    submit_pages,
)
from federation.console.security import SecurityHeaders
from federation.console.web import HERE, Console


def build_app(console: Console) -> Starlette:
    """The ASGI application of one console."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        console.node.open()
        try:
            yield
        finally:
            console.node.close()

    routes = [
        *account_pages.routes(console),
        *case_pages.routes(console),
        *ours_pages.routes(console),
        *submit_pages.routes(console),
        *stats_pages.routes(console),
        *operations_pages.routes(console),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
