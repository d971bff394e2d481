"""Login, logout and (for admins) the accounts page."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from federation.console.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_refused,
    same_token,
    set_cookie,
)
from federation.console.users import Role, UserError
from federation.console.web import (
    Console,
    Visitor,
    form_of,
    form_route,
    page_route,
    text,
    to_login,
    visitor,
)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_form(console: Console, request: Request, error: str = "", status: int = 200) -> Response:
    """The login page, with a fresh pre-session CSRF token (double-submit cookie)."""
    token = secrets.token_urlsafe(32)
    response = console.page(request, "login.html", {"login_csrf": token, "error": error}, status)
    set_cookie(response, LOGIN_CSRF_COOKIE, token, secure=console.secure_cookies)
    return response


async def login_page(console: Console, request: Request) -> Response:
    """GET /login."""
    if await visitor(console, request) is not None:
        return RedirectResponse("/inbox", status_code=303)
    return login_form(console, request)


async def login(console: Console, request: Request) -> Response:
    """POST /login: throttled per account and address; a new session on success."""
    form = await request.form()
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        return csrf_refused()
    name, address = text(form, "name", 64), _address(request)
    wait = console.throttle.wait(name, address)
    if wait > 0:
        error = f"Too many failed logins; try again in {int(wait // 60) + 1} minutes."
        return login_form(console, request, error, status=429)
    user = await console.call(console.users.verify, name, text(form, "password", 1024))
    if user is None:
        console.throttle.failed(name, address)
        return login_form(console, request, "Wrong name or password.", status=401)
    console.throttle.succeeded(name)
    session = console.sessions.start(user.name)
    response = RedirectResponse("/inbox", status_code=303)
    set_cookie(response, SESSION_COOKIE, session.token, secure=console.secure_cookies)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def logout(console: Console, request: Request, who: Visitor) -> Response:
    """POST /logout: the session ends here and now."""
    console.sessions.end(who.session.token)
    response = to_login()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _users_page(
    console: Console, request: Request, who: Visitor, message: str = "", status: int = 200
) -> Response:
    context: dict[str, Any] = {
        "me": who.user,
        "csrf": who.session.csrf,
        "users": console.users.users(),
        "roles": [r.label for r in Role],
        "message": message,
    }
    return console.page(request, "users.html", context, status)


async def users_page(console: Console, request: Request, who: Visitor) -> Response:
    """GET /admin/users (admins only)."""
    return _users_page(console, request, who)


async def add_user(console: Console, request: Request, who: Visitor) -> Response:
    """POST /admin/users: create an account."""
    form = form_of(request)
    try:
        role = Role.parse(text(form, "role", 16))
        added = await console.call(
            console.users.add, text(form, "name", 64), role, text(form, "password", 1024)
        )
    except (KeyError, UserError) as exc:
        return _users_page(console, request, who, f"Not added: {exc}", status=400)
    return _users_page(console, request, who, f"Added {added.name} ({added.role.label}).")


async def disable_user(console: Console, request: Request, who: Visitor) -> Response:
    """POST /admin/users/disable: disable an account and end its sessions."""
    name = text(form_of(request), "name", 64)
    try:
        await console.call(console.users.disable, name)
    except UserError as exc:
        return _users_page(console, request, who, f"Not disabled: {exc}", status=400)
    console.sessions.end_all_of(name)
    return _users_page(console, request, who, f"Disabled {name}.")


def routes(console: Console) -> list[Route]:
    """The account routes of ``console``."""

    async def get_login(request: Request) -> Response:
        return await login_page(console, request)

    async def post_login(request: Request) -> Response:
        return await login(console, request)

    return [
        Route("/login", get_login, methods=["GET"]),
        Route("/login", post_login, methods=["POST"]),
        form_route(console, "/logout", Role.ANALYST, logout),
        page_route(console, "/admin/users", Role.ADMIN, users_page),
        form_route(console, "/admin/users", Role.ADMIN, add_user),
        form_route(console, "/admin/users/disable", Role.ADMIN, disable_user),
    ]
