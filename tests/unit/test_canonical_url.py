"""Canonical URL (HFP v1 §5): a table of cases, refusals and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.core.canonical_url import (
    MAX_URL_CHARS,
    UrlError,
    _already_canonical,
    _canonicalise,
    _remove_dot_segments,
    canonical_url,
)
from federation.core.errors import InvalidArgumentError

CASES: list[tuple[str, str]] = [
    # Scheme and host case, empty path.
    ("HTTP://Example.COM", "http://example.com/"),
    ("HtTpS://WWW.Example.Net/Path", "https://www.example.net/Path"),
    ("ftp://FILES.example.com", "ftp://files.example.com/"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com?q=1", "http://example.com/?q=1"),
    # Path case is significant and kept.
    ("http://example.com/A/b/C", "http://example.com/A/b/C"),
    # IDN hosts to punycode.
    ("http://bücher.example/", "http://xn--bcher-kva.example/"),
    ("http://BÜCHER.example/", "http://xn--bcher-kva.example/"),
    ("http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/"),
    ("http://XN--BCHER-KVA.example/", "http://xn--bcher-kva.example/"),
    ("http://b%C3%BCcher.example/", "http://xn--bcher-kva.example/"),
    ("http://faß.example/", "http://xn--fa-hia.example/"),  # non-transitional
    ("http://пример.test/", "http://xn--e1afmkfd.test/"),
    ("http://例え.test/", "http://xn--r8jz45g.test/"),
    ("http://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/", "http://example.com/"),
    ("http://example\u3002com/", "http://example.com/"),  # ideographic full stop
    ("http://i\u2764.test/", "http://xn--i-7iq.test/"),  # UTS-46 valid, not IDNA2008
    ("http://xn--i-7iq.test/", "http://xn--i-7iq.test/"),
    ("http://ex%61mple.com/", "http://example.com/"),
    ("http://a_b.example.com/", "http://a_b.example.com/"),
    # Ports.
    ("http://example.com:80/", "http://example.com/"),
    ("https://example.com:443/", "https://example.com/"),
    ("ftp://example.com:21/", "ftp://example.com/"),
    ("http://example.com:443/", "http://example.com:443/"),
    ("https://example.com:80/", "https://example.com:80/"),
    ("http://example.com:8080/", "http://example.com:8080/"),
    ("http://example.com:0080/", "http://example.com/"),
    ("http://example.com:08080/a", "http://example.com:8080/a"),
    ("http://example.com:/", "http://example.com/"),
    # Percent-encoding.
    ("http://example.com/%7euser/%41%62%63", "http://example.com/~user/Abc"),
    ("http://example.com/%2d%2e%5f%7E%30", "http://example.com/-._~0"),
    ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
    ("http://example.com/a%2Fb/../c", "http://example.com/c"),
    ("http://example.com/%3a%40%21%24", "http://example.com/%3A%40%21%24"),
    ("http://example.com/a?x=%2b%26%3d", "http://example.com/a?x=%2B%26%3D"),
    ("http://example.com/caf%c3%a9", "http://example.com/caf%C3%A9"),
    ("http://example.com/café", "http://example.com/caf%C3%A9"),
    ("http://example.com/?q=ü", "http://example.com/?q=%C3%BC"),
    ("http://example.com/%zz/%", "http://example.com/%25zz/%25"),
    ("http://example.com/a[1]", "http://example.com/a%5B1%5D"),
    ('http://example.com/"<>^`{|}', "http://example.com/%22%3C%3E%5E%60%7B%7C%7D"),
    ("http://example.com/it's", "http://example.com/it's"),
    ("http://example.com/it%27s", "http://example.com/it%27s"),
    ("http://example.com/a:b@c;d=e,f", "http://example.com/a:b@c;d=e,f"),
    # Dot segments.
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/../a", "http://example.com/a"),
    ("http://example.com/../../a/b", "http://example.com/a/b"),
    ("http://example.com/a/b/.", "http://example.com/a/b/"),
    ("http://example.com/a/b/..", "http://example.com/a/"),
    ("http://example.com/.", "http://example.com/"),
    ("http://example.com/..", "http://example.com/"),
    ("http://example.com/a/%2e%2E/b", "http://example.com/b"),
    ("http://example.com/a/.b/..c", "http://example.com/a/.b/..c"),
    ("http://example.com//a//b", "http://example.com//a//b"),
    ("http://example.com/a/b/c/./../../g", "http://example.com/a/g"),
    # Fragment.
    ("http://example.com/a#top", "http://example.com/a"),
    ("http://example.com/a?q=1#f?g=2", "http://example.com/a?q=1"),
    ("http://example.com#", "http://example.com/"),
    # Query: order, duplicates, empty query.
    ("http://example.com/?b=2&a=1", "http://example.com/?b=2&a=1"),
    ("http://example.com/?a=1&a=1&a=2", "http://example.com/?a=1&a=1&a=2"),
    ("http://example.com/?a+b=c+d", "http://example.com/?a+b=c+d"),
    ("http://example.com/?", "http://example.com/"),
    ("http://example.com/a?#f", "http://example.com/a"),
    ("http://example.com/??", "http://example.com/??"),
    ("http://example.com/?&", "http://example.com/?&"),
    ("http://example.com/?q=/a/../b", "http://example.com/?q=/a/../b"),
    ("http://example.com/?q=a\\b", "http://example.com/?q=a%5Cb"),
    # Userinfo dropped.
    ("http://user:secret@example.com/", "http://example.com/"),
    ("ftp://anonymous@example.com:21/pub", "ftp://example.com/pub"),
    ("http://@example.com/", "http://example.com/"),
    ("http://a@b@example.net/", "http://example.net/"),
    # Backslashes before the query are slashes (as in browsers).
    ("http://example.com\\a\\b", "http://example.com/a/b"),
    ("http://example.com\\@example.net/", "http://example.com/@example.net/"),
    # IPv6.
    ("http://[2001:DB8:0:0:0:0:0:1]/", "http://[2001:db8::1]/"),
    ("http://[2001:db8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
    ("https://[2001:0db8:0000:0000:0000:ff00:0042:8329]:443/", "https://[2001:db8::ff00:42:8329]/"),
    ("http://[::1]/", "http://[::1]/"),
    ("http://[0:0:0:0:0:0:0:0]/", "http://[::]/"),
    ("http://[::FFFF:192.0.2.1]/", "http://[::ffff:c000:201]/"),
    # IPv4, including the forms browsers accept.
    ("http://192.0.2.1/", "http://192.0.2.1/"),
    ("http://192.0.2.1:80/", "http://192.0.2.1/"),
    ("http://192.0.2.1./", "http://192.0.2.1/"),
    ("http://0x7f.1/", "http://127.0.0.1/"),
    ("http://0XC0.0x00.02.1/", "http://192.0.2.1/"),
    ("http://3221225985/", "http://192.0.2.1/"),
    ("http://0300.0.2.1/", "http://192.0.2.1/"),
    ("http://192.0.513/", "http://192.0.2.1/"),
    ("http://\uff11\uff19\uff12.0.2.1/", "http://192.0.2.1/"),
    # Trailing dot.
    ("http://example.com./", "http://example.com/"),
    ("http://EXAMPLE.COM.:80", "http://example.com/"),
    ("http://bücher.example./", "http://xn--bcher-kva.example/"),
    # A registered name that merely starts with digits stays a name.
    ("http://123.example.com/", "http://123.example.com/"),
    ("http://localhost.test:8080", "http://localhost.test:8080/"),
]

REFUSED: list[tuple[str, str]] = [
    # No host / not absolute.
    ("http://", "no host"),
    ("http:///a", "no host"),
    ("http://user@/", "no host"),
    ("http://:80/", "no host"),
    ("http:example.com", "no host"),
    ("http:/example.com", "no host"),
    ("example.com/a", "not absolute"),
    ("//example.com/a", "not absolute"),
    ("", "not absolute"),
    # Unsupported schemes.
    ("gopher://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("data:text/plain,hi", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("mailto:a@example.com", "scheme"),
    ("example.com:80/a", "scheme"),
    # Bad ports.
    ("http://example.com:65536/", "port"),
    ("http://example.com:99999999999999999999/", "port"),
    ("http://example.com:8o/", "port"),
    ("http://example.com:-1/", "port"),
    ("http://example.com:80:80/", "port"),
    ("http://example.com:\uff18\uff10/", "port"),
    # Invalid hosts and IDN.
    ("http://" + "a" * 64 + ".example.com/", "too long"),
    ("http://" + "ü" * 60 + ".example.com/", "internationalised"),
    ("http://" + ".".join(["a" * 63] * 4) + "/", "too long"),
    ("http://a..example.com/", "invalid host"),
    ("http://.example.com/", "invalid host"),
    ("http://example.com../", "invalid host"),
    ("http://./", "invalid host"),
    ("http://exa!mple.com/", "invalid host"),
    ("http://exa*mple.com/", "invalid host"),
    ("http://exa%2Fmple.com/", "invalid host"),
    ("http://exa%zzmple.com/", "invalid host"),
    ("http://b%C3.example/", "invalid host"),
    ("http://exa[mple.com/", "invalid host"),
    ("http://xn--zz.example/", "internationalised"),
    ("http://xn--abc-.example/", "internationalised"),
    ("http://xn--.example/", "internationalised"),
    ("http://a\u200db.example/", "internationalised"),  # joiner out of context
    # Odd numbers that are not IPv4 addresses.
    ("http://1.2.3.4.5/", "IPv4"),
    ("http://256.0.0.1/", "IPv4"),
    ("http://1.2.3.256/", "IPv4"),
    ("http://4294967296/", "IPv4"),
    ("http://08.0.0.1/", "IPv4"),
    ("http://0x1g.0.0.1/", "IPv4"),
    ("http://example.123/", "IPv4"),
    # IPv6 literals.
    ("http://[::1/", "IPv6"),
    ("http://[2001:db8::g]/", "IPv6"),
    ("http://[2001:db8::1::2]/", "IPv6"),
    ("http://[fe80::1%25eth0]/", "IPv6"),
    ("http://[v1.fe80::a+en1]/", "IPv6"),
    ("http://[]/", "IPv6"),
    ("http://[::1]x/", "invalid host"),
    ("http://192.0.2.1]/", "invalid host"),
    # Whitespace and control characters, anywhere.
    ("http://exa mple.com/", "whitespace"),
    ("http://example.com/a b", "whitespace"),
    (" http://example.com/", "whitespace"),
    ("http://example.com/\n", "whitespace"),
    ("http://example.com/\t", "whitespace"),
    ("http://example.com/\x00", "whitespace"),
    ("http://example.com/\x7f", "whitespace"),
    ("http://example.com/\u00a0", "whitespace"),
    ("http://example.com/a#b c", "whitespace"),
    # Unencodable text and over-long input.
    ("http://example.com/\ud800", "invalid characters"),
    ("http://example.com/" + "a" * MAX_URL_CHARS, "too long"),
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_canonical_form(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    # Every expected value is itself canonical (idempotence on the table).
    assert canonical_url(expected) == expected


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlError, match=reason):
        canonical_url(url)


def test_error_is_an_invalid_argument_and_never_echoes_input() -> None:
    secret = "http://example.com:8x/very-private-path-token"
    with pytest.raises(InvalidArgumentError, match="port") as info:
        canonical_url(secret)
    assert "private" not in str(info.value)
    assert (info.value.reason, info.value.field) == ("INVALID_URL", "url")


def test_maximal_length_accepted() -> None:
    url = "http://example.com/" + "a" * (MAX_URL_CHARS - len("http://example.com/"))
    assert canonical_url(url) == url


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert len(REFUSED) >= 20


# --- RFC 3986 §5.2.4, literally, to cross-check the linear implementation ---


def _rfc_remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 step 2, rule by rule (A to E)."""
    inp, out = path, ""
    while inp:
        if inp.startswith(("../", "./")):  # A
            inp = inp[inp.index("/") + 1 :]
        elif inp.startswith("/./") or inp == "/.":  # B
            inp = "/" + inp[3:]
        elif inp.startswith("/../") or inp == "/..":  # C
            inp = "/" + inp[4:]
            out = out[: max(out.rfind("/"), 0)]
        elif inp in (".", ".."):  # D
            inp = ""
        else:  # E
            start = 1 if inp.startswith("/") else 0
            end = inp.find("/", start)
            end = len(inp) if end < 0 else end
            out += inp[:end]
            inp = inp[end:]
    return out


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),
        ("/mid/content=5/../6", "/mid/6"),
        ("/..", "/"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/./a", "/a"),
        ("/a//../b", "/a/b"),
        ("//", "//"),
        ("", ""),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert _remove_dot_segments(path) == expected
    assert _rfc_remove_dot_segments(path) == expected


_SEGMENT = st.sampled_from(["", ".", "..", "a", "b", "..a", ".a", "a."])


@given(st.lists(_SEGMENT, max_size=12))
def test_remove_dot_segments_matches_rfc(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert _remove_dot_segments(path) == _rfc_remove_dot_segments(path)


# --- Properties ---

_HOSTS = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "EXAMPLE.net",
            "bücher.example",
            "xn--bcher-kva.example",
            "sub.example.test.",
            "192.0.2.7",
            "0x7f.1",
            "[2001:DB8::1]",
            "[::ffff:192.0.2.1]",
            "i\u2764.test",
            "ex%41mple.com",
        ]
    ),
    st.from_regex(r"[a-zA-Z0-9_-]{1,10}(\.[a-zA-Z0-9-]{1,10}){0,2}\.test", fullmatch=True),
)
# Any printable text for path and query, including "%", "\\", "." and non-ASCII;
# "#" and "?" are placed by the URL layout below.
_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="#?"
    ),
    max_size=30,
)
_ESCAPE = st.from_regex(r"%[0-9a-fA-F]{2}", fullmatch=True)
_PATH = st.lists(st.one_of(_TEXT, _ESCAPE, st.sampled_from([".", "..", "%2e", "%2F"])), max_size=6)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "HTTPS", "Ftp"]))
    userinfo = draw(st.sampled_from(["", "user@", "u:p@"]))
    host = draw(_HOSTS)
    port = draw(st.sampled_from(["", ":80", ":443", ":21", ":8080", ":"]))
    path = "/".join(draw(_PATH))
    if path and not path.startswith("/"):
        path = "/" + path
    query = draw(st.one_of(st.none(), _TEXT))
    fragment = draw(st.one_of(st.none(), _TEXT))
    url = f"{scheme}://{userinfo}{host}{port}{path}"
    if query is not None:
        url += "?" + query
    if fragment is not None:
        url += "#" + fragment
    return url


def _whitespace_free(text: str) -> bool:
    return not any(ch.isspace() for ch in text)


@settings(max_examples=400)
@given(_urls())
def test_idempotent(url: str) -> None:
    try:
        once = canonical_url(url)
    except UrlError:
        return
    assert canonical_url(once) == once
    assert once.isascii()
    assert _whitespace_free(once)
    assert "#" not in once


@settings(max_examples=200)
@given(_urls(), _TEXT)
def test_fragment_never_matters(url: str, fragment: str) -> None:
    base = url.split("#", 1)[0]
    try:
        expected = canonical_url(base)
    except UrlError:
        return
    assert canonical_url(f"{base}#{fragment}") == expected


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        result = canonical_url(text)
    except UrlError:
        return
    assert canonical_url(result) == result


_LABELS = st.from_regex(
    r"[a-z0-9_-]{1,8}|xn--[a-z0-9]{1,6}|[0-9]{1,3}|0x[0-9a-f]{1,2}", fullmatch=True
)
_SEGMENTS = st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,6}|\.|\.\.", fullmatch=True)


@settings(max_examples=2000, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "ftp", "HTTP"]),
    labels=st.lists(_LABELS, min_size=1, max_size=4),
    port=st.sampled_from(["", ":80", ":8080", ":"]),
    segments=st.lists(_SEGMENTS, min_size=0, max_size=4),
    query=st.one_of(
        st.just(""), st.just("?"), st.from_regex(r"\?[A-Za-z0-9=&/?.~%+-]{1,8}", fullmatch=True)
    ),
)
def test_fast_path_agrees_with_the_full_rules(
    scheme: str, labels: list[str], port: str, segments: list[str], query: str
) -> None:
    """A URL the fast path passes through unchanged is exactly what the full
    rules produce for it (generated URLs around the fast path's edges)."""
    url = f"{scheme}://{'.'.join(labels)}{port}" + "".join("/" + s for s in segments) + query
    if _already_canonical(url):
        assert _canonicalise(url) == url


@pytest.mark.parametrize(
    ("url", "fast"),
    [
        ("https://smoke.example.test/item/0189-ab?x=1&y=%2", False),  # "%" needs the rules
        ("https://smoke.example.test/item/0189-ab?x=1&y=2", True),
        ("http://example.com", False),  # empty path becomes "/"
        ("http://a.example/./b", False),
        ("http://1.2.3.4/", False),
        ("http://xn--bcher-kva.example/", False),
    ],
)
def test_fast_path_takes_plain_urls_only(url: str, fast: bool) -> None:
    assert _already_canonical(url) is fast
    assert canonical_url(url) == _canonicalise(url)
