"""The headers every answer carries, the session cookie, and the CSRF check.

The Content-Security-Policy allows nothing but the console's own files: no
inline script or style, no frames, no form posting elsewhere, no images from
anywhere else. That, the escaping templates and the rule that a reported URL
is only ever text make a report field unable to run or fetch anything.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import PlainTextResponse, Response

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
SESSION_COOKIE = "hfed_console"
LOGIN_CSRF_COOKIE = "hfed_login_csrf"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware: adds HEADERS to every HTTP answer (static files too)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the call on, adding the headers to the start of the answer."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(
                        (k.encode(), v.encode())
                        for k, v in HEADERS.items()
                        if k.encode() not in present
                    ),
                ]
            await send(message)

        await self._app(scope, receive, with_headers)


def set_cookie(response: Response, name: str, value: str, *, secure: bool) -> None:
    """A cookie scripts cannot read and other sites never send (SameSite=Strict)."""
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure, path="/")


def same_token(given: object, expected: str) -> bool:
    """True when a form's CSRF token is the expected one (constant time)."""
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given, expected)


def csrf_refused() -> Response:
    """The answer to a post without the right CSRF token."""
    return PlainTextResponse(
        "403 Forbidden: the form's CSRF token is missing or wrong (reload the page and try again)",
        status_code=403,
    )
