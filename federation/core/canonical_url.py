"""Canonical form of a reported URL: the deduplication key of HFP v1 §5.

"One open case per canonical URL": two reports name the same location exactly
when their canonical URLs are equal, so this function must be deterministic,
idempotent (``canonical_url(canonical_url(u)) == canonical_url(u)``) and must
never merge two URLs that a server could treat as different resources. Nothing
here fetches or resolves anything: it is string processing only.

The rules, applied in this order (each with an example, input → output):

1. **Input hygiene.** At most 4096 characters (the protocol's limit on
   ``Report.url``); whitespace and control characters anywhere are refused
   (``"http://a.test/a b"`` → ``UrlError``): the node's validation refuses
   them too, and silently trimming or encoding them would hide a garbled paste.
2. **Backslash before the query is a slash**, as in every browser for
   http/https/ftp (WHATWG "special" schemes):
   ``http://example.com\\a\\b`` → ``http://example.com/a/b``. This also stops
   ``http://a.test\\@b.test/`` being read with host ``b.test`` when a browser
   opens ``a.test``. In the query a backslash is just a character to escape.
3. **Scheme** must be http, https or ftp, compared and written lower-case:
   ``HTTP://example.com/`` → ``http://example.com/``. A URL without ``//``
   after the scheme has no host and is refused (``http:example.com``).
4. **Userinfo is dropped**: ``http://user:pw@example.com/`` →
   ``http://example.com/``. Credentials do not change the location and must
   not be stored. When several ``@`` occur the host is what follows the last
   one, which is where a browser connects.
5. **Host**
   - Percent-escapes in a registered name are decoded first (as browsers do):
     ``http://ex%61mple.com/`` → ``http://example.com/``.
   - UTS-46 mapping (non-transitional, no STD3 rules), which lower-cases and
     folds compatibility forms: ``http://EXAMPLE.com/`` written in fullwidth
     letters (U+FF25 ...) → ``http://example.com/``; ``ß`` stays ``ß``
     (non-transitional, like current browsers).
   - **IDN to punycode** (IDNA2008 via the ``idna`` package):
     ``http://bücher.example/`` → ``http://xn--bcher-kva.example/``. Symbols
     that UTS-46 maps as valid but IDNA2008 disallows (emoji labels, which
     browsers still open) are encoded the same way with the RFC 3492 punycode
     codec rather than refused: a hotline must be able to report them.
     Already-encoded ``xn--`` labels are accepted only in their canonical
     form; invalid punycode is refused.
   - ASCII labels may hold letters, digits, ``-`` and ``_`` (underscores occur
     in real host names); other characters are refused. Labels are at most 63
     and names at most 253 octets once encoded; empty labels (``a..b``) are
     refused.
   - **A trailing dot is removed**: ``http://example.com./`` →
     ``http://example.com/`` (same DNS name, one key).
   - **IPv4**: a host whose last label is a number is an IPv4 address and is
     written as a dotted quad. Odd forms are normalised the way browsers
     interpret them (WHATWG IPv4 parser: hex ``0x``, octal leading ``0``,
     fewer than four parts) rather than refused or kept as names, because they
     are used to disguise addresses and must dedup with the plain form:
     ``http://0x7f.1/`` → ``http://127.0.0.1/``; ``http://3232235777/`` →
     ``http://192.168.1.1/``. Forms that cannot be an address
     (``http://1.2.3.4.5/``, ``http://256.1.1.1/``, ``http://example.123/``)
     are refused, as browsers refuse them.
   - **IPv6** literals stay in brackets, lower-case and compressed (RFC 5952
     via ``ipaddress``): ``http://[2001:DB8:0:0::1]/`` →
     ``http://[2001:db8::1]/``. Zone identifiers and IPvFuture literals are
     refused (not a public location).
6. **Port**: the default one is dropped (80 http, 443 https, 21 ftp), as is an
   empty port; others are kept without leading zeros:
   ``http://example.com:80/`` → ``http://example.com/``;
   ``http://example.com:0080/`` → ``http://example.com/``;
   ``https://example.com:8443/`` → ``https://example.com:8443/``. Non-digits
   or a value over 65535 are refused.
7. **Percent-encoding** of path and query (RFC 3986 §6.2.2.2):
   escapes of unreserved characters (ALPHA / DIGIT / ``-._~``) are decoded
   (``/%7Euser/%41`` → ``/~user/A``); every other escape keeps its meaning and
   gets upper-case hex (``/a%2fb`` → ``/a%2Fb``: an escaped slash is not a
   path separator, so it is kept); characters that are not allowed raw in
   that component (non-ASCII, ``"<>[]^`{|}\\``) are encoded as UTF-8
   (``/é`` → ``/%C3%A9``, which equals the pre-encoded form); a ``%`` that
   does not start a valid escape is encoded as ``%25``. Reserved characters
   written raw stay raw: ``'`` and ``%27`` stay different (RFC 3986 §2.2).
8. **Path**: dot segments are resolved (RFC 3986 §5.2.4) after step 7, so
   ``%2E`` counts as a dot: ``/a/./b/../c`` → ``/a/c``; ``/../a`` → ``/a``;
   ``/a/b/.`` → ``/a/b/``. An empty path becomes ``/``:
   ``http://example.com`` → ``http://example.com/``. Repeated slashes are
   kept (``//a`` can be a different resource from ``/a``).
9. **Query** is kept as written, parameters in their order and duplicates
   kept (``?b=2&a=1&a=1`` stays as is; ``+`` stays ``+``). An **empty query is
   dropped**, so ``http://a.test/?`` equals ``http://a.test/``: no server
   distinguishes them in practice and reporters add or drop the bare ``?``.
10. **Fragment is dropped**: ``http://example.com/a#top`` →
    ``http://example.com/a``. It is never sent to the server.

The canonical form is ASCII and may be longer than the input (each non-ASCII
character becomes up to twelve characters of escapes); callers index it by a
digest rather than by length-limited columns.

Library choice: none of the maintained Python libraries implements exactly
these rules, so the RFC 3986 algorithms are written here (about 200 lines)
and only IDNA and IP parsing come from libraries (``idna``, ``ipaddress``).
``url-normalize`` sorts query parameters by default and unquotes then
re-quotes whole components (conflating reserved escapes with raw characters);
``rfc3986``'s released normaliser only upper-cases escapes (decoding
unreserved ones is an unmerged change) and leaves IDN and IPv4 forms alone;
``yarl`` follows its own, version-dependent re-quoting rules (e.g. for ``+``
and ``%2F``) and pulls in compiled dependencies; ``urllib.parse`` silently
strips and rewrites characters (tabs, newlines) instead of refusing them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Final

import idna

from federation.core.errors import INVALID_URL, InvalidArgumentError

__all__ = ["UrlError", "canonical_url"]


class UrlError(InvalidArgumentError):
    """A URL that cannot be canonicalised.

    The message is short and safe to return to a peer: it never repeats the
    input, which may be long or hostile.
    """

    def __init__(self, public_message: str) -> None:
        super().__init__(INVALID_URL, public_message, field="url")


#: Protocol limit on Report.url (HFP v1 §3).
MAX_URL_CHARS: Final = 4096

_DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443, "ftp": 21}

# RFC 3986 appendix B, without the optional scheme/authority groups being
# optional: every accepted URL is absolute with an authority, and anything the
# regex cannot split that way is refused below with a specific message.
_SPLIT: Final = re.compile(r"([^:/?#]+):(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#.*)?", re.DOTALL)
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")

_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# One pattern serves path and query: it matches every escape (to normalise
# it) and every character that may not appear raw in either component. "?"
# is allowed raw because it can only reach the path through the query, and a
# lone "%" is matched as a disallowed character so that it becomes "%25".
_PCT_OR_DISALLOWED: Final = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?]")

_HOST_PCT_RUN: Final = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_ASCII_LABEL: Final = re.compile(r"[a-z0-9_\-]+")
# WHATWG "ends in a number": the last label is decimal digits or 0x-hex.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
#: Whitespace (``\s`` is str.isspace's set) and every Cc control (C0, DEL,
#: C1), found in one regex scan rather than a Python loop per character.
_FORBIDDEN: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_MAX_LABEL: Final = 63
_MAX_NAME: Final = 253
# A URL already in canonical form (see _already_canonical). Host labels:
# letters, digits and "_" with single inner hyphens (so no "xn--" forms), the
# last one starting with a letter (so never an IPv4 address); path segments
# and query of characters that rule 7 leaves raw, no "%".
_LABEL: Final = r"[a-z0-9_]+(?:-[a-z0-9_]+)*"
_PCHARS: Final = r"[A-Za-z0-9._~!$&'()*+,;=:@-]"
_PLAIN: Final = re.compile(
    rf"(?:https?|ftp)://(?P<host>(?:{_LABEL}\.)*[a-z](?:[a-z0-9_]*(?:-[a-z0-9_]+)*)?)"
    rf"(?P<path>(?:/{_PCHARS}*)+)(?:\?(?:{_PCHARS}|[/?])+)?"
)
_DOT_SEGMENT: Final = re.compile(r"/\.\.?(?:/|$)")
_MAX_PORT: Final = 65535


# Cached because a report's URL is checked (check_report) and then keyed
# (filing) by different layers; the function is pure and the cache bounded.
@functools.lru_cache(maxsize=1024)
def canonical_url(url: str) -> str:
    """Return the canonical form of ``url`` (the HFP deduplication key).

    See the module docstring for the rules. Raises :class:`UrlError` with a
    short, public-safe message if the URL cannot be canonicalised.
    """
    if len(url) > MAX_URL_CHARS:
        raise UrlError("URL is too long")
    if _already_canonical(url):
        return url
    return _canonicalise(url)


def _already_canonical(url: str) -> bool:
    """True for a plain URL that every rule leaves unchanged (most reports):
    lower-case scheme and host name, no userinfo, port, escapes, dot segments,
    empty query or fragment. Such a URL is its own canonical form, and the
    full rules are only needed for the rest. tests/unit/test_canonical_url.py
    checks with generated URLs that both paths agree."""
    match = _PLAIN.fullmatch(url)
    if match is None:
        return False
    host, path = match.group("host"), match.group("path")
    return (
        len(host) <= _MAX_NAME
        and all(len(label) <= _MAX_LABEL for label in host.split("."))
        and _DOT_SEGMENT.search(path) is None
    )


def _canonicalise(url: str) -> str:
    """The full rules (see the module docstring)."""
    if _FORBIDDEN.search(url):
        raise UrlError("URL contains whitespace or control characters")

    # Rule 2: browsers treat "\" as "/" before the query for these schemes.
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    url = url[:cut].replace("\\", "/") + url[cut:]

    match = _SPLIT.fullmatch(url)
    if match is None or _SCHEME.fullmatch(match.group(1)) is None:
        raise UrlError("URL is not absolute")
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlError("unsupported URL scheme (http, https or ftp only)")
    authority = match.group(3)
    if authority is None:
        raise UrlError("URL has no host")

    # Rule 4: userinfo ends at the last "@" (where a browser would connect).
    _, _, hostport = authority.rpartition("@")
    host_text, port_text = _split_host_port(hostport)
    host = _canonical_host(host_text)
    port = _canonical_port(port_text, scheme)

    try:
        path = _remove_dot_segments(_normalise_percent(match.group(4)))
        query = _normalise_percent(match.group(6) or "")
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded as UTF-8.
        raise UrlError("URL contains invalid characters") from None
    if not path:
        path = "/"
    # Rule 9: an empty query ("?" alone) is dropped; rule 10: fragment dropped.
    return f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    """Split ``host[:port]``; an IPv6 literal keeps its brackets."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise UrlError("invalid IPv6 address")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise UrlError("invalid host")
        return host, rest[1:]
    host, colon, port = hostport.partition(":")
    return host, (port if colon else None)


def _canonical_port(port_text: str | None, scheme: str) -> str:
    """``":port"``, or ``""`` for an absent, empty or default port."""
    if not port_text:
        return ""
    if not (port_text.isascii() and port_text.isdigit()):
        raise UrlError("invalid port")
    # Strip leading zeros before int() so a huge digit string stays cheap.
    port = int(port_text.lstrip("0") or "0")
    if port > _MAX_PORT:
        raise UrlError("invalid port")
    return "" if port == _DEFAULT_PORTS[scheme] else f":{port}"


def _canonical_host(text: str) -> str:
    if not text:
        raise UrlError("URL has no host")
    if text.startswith("["):
        return _canonical_ipv6(text[1:-1])
    if "[" in text or "]" in text:
        raise UrlError("invalid host")

    # Rule 5: decode escapes (a host is a name, not bytes), then UTS-46 map.
    decoded = _decode_host_escapes(text)
    if "%" in decoded:
        raise UrlError("invalid host")

    try:
        mapped = idna.uts46_remap(decoded, std3_rules=False, transitional=False)
    except idna.IDNAError:
        raise UrlError("invalid internationalised host name") from None

    labels = mapped.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # trailing dot: the same DNS name
    if any(not label for label in labels):
        raise UrlError("invalid host")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return _canonical_ipv4(labels)

    ascii_labels = [_ascii_label(label) for label in labels]
    name = ".".join(ascii_labels)
    if len(name) > _MAX_NAME:
        raise UrlError("host name is too long")
    return name


def _decode_host_escapes(text: str) -> str:
    """Decode the percent-escapes of a registered name.

    Each run of escapes is read as UTF-8 on its own, so ``b%C3%BCcher`` and
    ``bücher`` decode alike; a run that is not UTF-8 is refused.
    """
    out: list[str] = []
    pos = 0
    for run in _HOST_PCT_RUN.finditer(text):
        out.append(text[pos : run.start()])
        raw = bytes(int(h, 16) for h in run.group(0).split("%")[1:])
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise UrlError("invalid host") from None
        pos = run.end()
    out.append(text[pos:])
    return "".join(out)


def _ascii_label(label: str) -> str:
    """One label of a UTS-46-mapped host in its canonical ASCII form."""
    if label.isascii():
        if label.startswith("xn--"):
            return _checked_a_label(label)
        if _ASCII_LABEL.fullmatch(label) is None:
            raise UrlError("invalid host")
        if len(label) > _MAX_LABEL:
            raise UrlError("host label is too long")
        return label
    return _encode_u_label(label)


def _encode_u_label(label: str) -> str:
    """Punycode (``xn--``) form of a non-ASCII, already mapped label."""
    try:
        encoded = idna.alabel(label).decode("ascii")
    except idna.InvalidCodepoint:
        # Valid in UTS-46 (what browsers apply) but not in IDNA2008, e.g. an
        # emoji. Keep the checks that still apply, then encode as browsers do.
        # The stdlib "punycode" codec is exactly RFC 3492; its "idna" codec
        # (IDNA2003) is not used anywhere.
        try:
            idna.check_initial_combiner(label)
            idna.check_bidi(label)
        except idna.IDNAError:
            raise UrlError("invalid internationalised host name") from None
        encoded = "xn--" + label.encode("punycode").decode("ascii")
    except idna.IDNAError:
        raise UrlError("invalid internationalised host name") from None
    if len(encoded) > _MAX_LABEL:
        raise UrlError("host label is too long")
    return encoded


def _checked_a_label(label: str) -> str:
    """Accept an ``xn--`` label only if it is the canonical encoding of a name."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        raise UrlError("invalid internationalised host name") from None
    # An A-label must decode to non-ASCII text that is already UTS-46 mapped
    # and encodes back to the same label; anything else is an alias.
    if decoded.isascii():
        raise UrlError("invalid internationalised host name")
    try:
        remapped = idna.uts46_remap(decoded, std3_rules=False, transitional=False)
    except idna.IDNAError:
        raise UrlError("invalid internationalised host name") from None
    if remapped != decoded or "." in decoded or _encode_u_label(decoded) != label:
        raise UrlError("invalid internationalised host name")
    return label


def _canonical_ipv4(labels: list[str]) -> str:
    """WHATWG IPv4 parser: 1-4 parts, each decimal, 0x-hex or 0-octal."""
    if len(labels) > 4:
        raise UrlError("invalid IPv4 address")
    numbers = [_ipv4_number(label) for label in labels]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UrlError("invalid IPv4 address")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n * 256 ** (3 - i)
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str) -> int:
    radix = 10
    if part.startswith("0x"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0
    # Cap the digits so that int() of a long string stays cheap; any value
    # this long is out of range anyway.
    if len(part) > 12:
        raise UrlError("invalid IPv4 address")
    try:
        return int(part, radix)
    except ValueError:
        raise UrlError("invalid IPv4 address") from None


def _canonical_ipv6(text: str) -> str:
    # "%" would be a zone id (link-local, not a public location); a leading
    # "v" an IPvFuture literal. ipaddress would accept the former.
    if "%" in text or text[:1] in ("v", "V"):
        raise UrlError("invalid IPv6 address")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise UrlError("invalid IPv6 address") from None
    return f"[{address.compressed}]"


def _normalise_percent(component: str) -> str:
    """Rule 7 for a path or query (raises UnicodeEncodeError on surrogates)."""
    return _PCT_OR_DISALLOWED.sub(_fix_escape, component)


def _fix_escape(match: re.Match[str]) -> str:
    text = match.group(0)
    if len(text) == 3:
        ch = chr(int(text[1:], 16))
        return ch if ch in _UNRESERVED else text.upper()
    return "".join(f"%{byte:02X}" for byte in text.encode("utf-8"))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for a path that is empty or starts with "/".

    A linear segment-stack form of the RFC's string-rewriting loop (the tests
    cross-check it against a literal transcription): "." is dropped, ".."
    drops the previous segment, and a final "." or ".." leaves a trailing "/".
    """
    if not path:
        return path
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if i == last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)
