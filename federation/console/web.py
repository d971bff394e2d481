"""What every page handler shares: the console's state, the visitor, the guard.

Each handler checks the session and the role on the server, every post its
CSRF token (``guarded``), and node calls run in the thread pool (the gRPC
client is synchronous).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from federation.cli.csv_safe import write_csv
from federation.console.node_client import NodeClient, NodeRefusalError
from federation.console.security import (
    SESSION_COOKIE,
    csrf_refused,
    same_token,
)
from federation.console.sessions import Session, Sessions
from federation.console.signatures import HistoryChecker
from federation.console.throttle import LoginThrottle
from federation.console.users import Role, User, UserStore

HERE = Path(__file__).resolve().parent
T = TypeVar("T")


def short_id(value: str) -> str:
    """An id as a table shows it: its last 12 characters. Ids are UUIDv7, whose
    first characters are a timestamp, so cases made together share a prefix;
    the tail is random (the full id is the cell's title and the link)."""
    return "…" + value[-12:] if len(value) > 12 else value


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["short_id"] = short_id
    return templates


@dataclass
class Console:
    """The console's state: its node, accounts, sessions and throttle."""

    node: NodeClient
    users: UserStore
    #: Checks case histories' signatures against the node's verified roster.
    history: HistoryChecker
    secure_cookies: bool = False
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: Jinja2Templates = field(default_factory=_templates)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (the node, the account file) off the event loop."""
        return await run_in_threadpool(fn, *args)

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        """Render a template with the common context (who, CSRF token, hotline)."""
        base = {"hotline": self.node.member_id, "me": None, "csrf": ""}
        return self.templates.TemplateResponse(
            request, name, {**base, **context}, status_code=status
        )


@dataclass(frozen=True, slots=True)
class Visitor:
    """A logged-in request: the session and the (still enabled) account."""

    session: Session
    user: User


async def visitor(console: Console, request: Request) -> Visitor | None:
    """The logged-in account of this request, or None (no, expired or disabled session)."""
    session = console.sessions.find(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        return None
    user = await console.call(console.users.user, session.user)
    if user is None or user.disabled:
        console.sessions.end_all_of(session.user)
        return None
    return Visitor(session, user)


def to_login() -> Response:
    """Send a visitor without a session to the login page."""
    return RedirectResponse("/login", status_code=303)


def forbidden(console: Console, request: Request, who: Visitor, needs: Role) -> Response:
    """The answer to a role that may not see the page."""
    context = {"me": who.user, "csrf": who.session.csrf, "needs": needs.label}
    return console.page(request, "forbidden.html", context, status=403)


Handler = Callable[[Console, Request, Visitor], Any]


def guarded(console: Console, role: Role, handler: Handler, *, post: bool = False) -> Any:
    """An endpoint that runs ``handler`` only for a session of at least ``role``
    (and, for a post, only with the session's CSRF token)."""

    async def endpoint(request: Request) -> Response:
        who = await visitor(console, request)
        if who is None:
            return to_login()
        if who.user.role < role:
            return forbidden(console, request, who, role)
        if post:
            form = await request.form()
            if not same_token(form.get("csrf"), who.session.csrf):
                return csrf_refused()
            request.state.form = form
        response: Response = await handler(console, request, who)
        return response

    return endpoint


def page_route(console: Console, path: str, role: Role, handler: Handler) -> Route:
    """GET ``path``: ``handler`` for a session of at least ``role``."""
    return Route(path, guarded(console, role, handler), methods=["GET"])


def form_route(console: Console, path: str, role: Role, handler: Handler) -> Route:
    """POST ``path``: ``handler`` for a session of at least ``role``, with its CSRF token."""
    return Route(path, guarded(console, role, handler, post=True), methods=["POST"])


def form_of(request: Request) -> FormData:
    """The form a guarded post handler was given (already CSRF-checked)."""
    form: FormData = request.state.form
    return form


def text(form: FormData, name: str, limit: int = 2000) -> str:
    """A text field of a form ("" when absent or a file), at most ``limit`` characters."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def now() -> datetime:
    """The time pages compare hold and deadline instants with."""
    return datetime.now(UTC)


def refusal_context(exc: NodeRefusalError) -> dict[str, str]:
    """How a page shows what the node said when it refused."""
    return {"code": exc.code, "reason": exc.reason, "detail": exc.detail}


def day_start(value: str) -> datetime | None:
    """A date input's value (YYYY-MM-DD) as the start of that day in UTC (None if not one)."""
    try:
        return datetime.strptime(value.strip()[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def csv_download(
    console: Console, prefix: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Response:
    """Rows as a CSV attachment a spreadsheet opens safely (UTF-8 with BOM, cells
    neutralised: cli.csv_safe), named for the hotline and the time."""
    out = io.StringIO()
    write_csv(out, columns, rows, excel=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    name = f"{prefix}-{console.node.member_id}-{stamp}.csv"
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
