"""Pure tests of `gateway.core.target`: the one canonical form of a request target."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.core import target as target_module
from gateway.core.target import (
    CanonicalTarget,
    TargetError,
    TargetProblem,
    canonicalize,
    canonicalize_path,
    host_name,
)

CANONICAL = [
    pytest.param("/", "/", id="root"),
    pytest.param("/orders", "/orders", id="plain"),
    pytest.param("/orders/7", "/orders/7", id="two-segments"),
    # Dot segments.
    pytest.param("/orders/../admin", "/admin", id="dotdot"),
    pytest.param("/orders/./7", "/orders/7", id="dot"),
    pytest.param("/a/b/../../c", "/c", id="dotdot-twice"),
    pytest.param("/a/./b/./c", "/a/b/c", id="dots-between"),
    pytest.param("/./orders", "/orders", id="leading-dot"),
    pytest.param("/.", "/", id="dot-alone"),
    pytest.param("/orders/..", "/", id="dotdot-back-to-root"),
    # Encoded dot segments.
    pytest.param("/orders/%2e%2e/admin", "/admin", id="encoded-dotdot-lower"),
    pytest.param("/orders/%2E%2E/admin", "/admin", id="encoded-dotdot-upper"),
    pytest.param("/orders/.%2e/admin", "/admin", id="encoded-dotdot-second"),
    pytest.param("/orders/%2e./admin", "/admin", id="encoded-dotdot-first"),
    pytest.param("/orders/%2e/7", "/orders/7", id="encoded-dot"),
    pytest.param("/public/%2e%2e/admin", "/admin", id="classic-bypass"),
    # Dots that are not dot segments.
    pytest.param("/orders/...", "/orders/...", id="three-dots"),
    pytest.param("/orders/..x", "/orders/..x", id="dotdot-prefix"),
    pytest.param("/orders/.hidden", "/orders/.hidden", id="dot-prefix"),
    pytest.param("/orders.json", "/orders.json", id="dot-in-name"),
    # Duplicate slashes.
    pytest.param("//orders", "/orders", id="leading-double-slash"),
    pytest.param("/orders//x", "/orders/x", id="inner-double-slash"),
    pytest.param("///orders///x", "/orders/x", id="triple-slashes"),
    pytest.param("//", "/", id="only-slashes"),
    pytest.param("/orders//", "/orders/", id="trailing-double-slash"),
    # Trailing slash.
    pytest.param("/orders/", "/orders/", id="trailing-slash-kept"),
    pytest.param("/orders/7/", "/orders/7/", id="trailing-slash-deep"),
    pytest.param("/orders/.", "/orders/", id="trailing-dot-is-slash"),
    pytest.param("/a/b/..", "/a/", id="trailing-dotdot-is-slash"),
    pytest.param("/a/b/../", "/a/", id="dotdot-then-slash"),
    pytest.param("/orders/%2e", "/orders/", id="trailing-encoded-dot"),
    # Unreserved escapes decoded.
    pytest.param("/%41", "/A", id="decode-A"),
    pytest.param("/%61bc", "/abc", id="decode-a"),
    pytest.param("/%7e", "/~", id="decode-tilde-lower"),
    pytest.param("/%7E", "/~", id="decode-tilde-upper"),
    pytest.param("/%2D%5F%30", "/-_0", id="decode-dash-underscore-digit"),
    pytest.param("/%6Frders/7", "/orders/7", id="decoded-name"),
    # Escapes of sub-delims, ':' and '@' decoded, as a decoding framework routes them.
    pytest.param("/a%2bb", "/a+b", id="plus-decoded"),
    pytest.param("/a%2Bb", "/a+b", id="plus-upper-decoded"),
    pytest.param("/v1/admin%3Areindex", "/v1/admin:reindex", id="colon-decoded"),
    pytest.param("/a%40b%21%24%26%27%28%29%2A%2C%3D", "/a@b!$&'()*,=", id="sub-delims-decoded"),
    # Other escapes kept, upper-cased.
    pytest.param("/a%3fb", "/a%3Fb", id="question-upper-cased"),
    pytest.param("/a%25b", "/a%25b", id="percent-kept"),
    pytest.param("/a%c3%a9", "/a%C3%A9", id="non-ascii-upper-cased"),
    pytest.param("/a%20b", "/a%20b", id="space-kept"),
    pytest.param("/%c3%a9", "/%C3%A9", id="utf8-upper-cased"),
    pytest.param("/%25", "/%25", id="percent-kept"),
    pytest.param("/%2541", "/%2541", id="percent-not-double-decoded"),
    pytest.param("/a%3fb", "/a%3Fb", id="question-kept"),
    pytest.param("/a%23b", "/a%23b", id="hash-kept"),
    # Raw sub-delims and pchar punctuation pass unchanged.
    pytest.param("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", id="sub-delims"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL)
def test_canonical_path(raw: str, expected: str) -> None:
    """An acceptable path is decoded, merged and resolved to exactly one canonical string."""
    assert canonicalize_path(raw) == expected


REFUSED = [
    # Escaping the root.
    pytest.param("/..", TargetProblem.ESCAPES_ROOT, id="dotdot-root"),
    pytest.param("/../admin", TargetProblem.ESCAPES_ROOT, id="dotdot-admin"),
    pytest.param("/orders/../../x", TargetProblem.ESCAPES_ROOT, id="dotdot-twice-too-many"),
    pytest.param("/%2e%2e/", TargetProblem.ESCAPES_ROOT, id="encoded-dotdot-root"),
    pytest.param("/%2E%2E", TargetProblem.ESCAPES_ROOT, id="encoded-upper-dotdot-root"),
    pytest.param("/./..", TargetProblem.ESCAPES_ROOT, id="dot-then-dotdot"),
    pytest.param("//../x", TargetProblem.ESCAPES_ROOT, id="double-slash-dotdot"),
    # Path parameters.
    pytest.param("/orders;x=1", TargetProblem.PATH_PARAMETER, id="semicolon"),
    pytest.param("/orders/..;/admin", TargetProblem.PATH_PARAMETER, id="semicolon-dotdot"),
    pytest.param("/orders%3Bx", TargetProblem.PATH_PARAMETER, id="encoded-semicolon-upper"),
    pytest.param("/orders%3bx", TargetProblem.PATH_PARAMETER, id="encoded-semicolon-lower"),
    # Encoded slash.
    pytest.param("/orders%2Fadmin", TargetProblem.ENCODED_SLASH, id="encoded-slash-upper"),
    pytest.param("/orders%2fadmin", TargetProblem.ENCODED_SLASH, id="encoded-slash-lower"),
    pytest.param("/..%2Fadmin", TargetProblem.ENCODED_SLASH, id="encoded-slash-after-dotdot"),
    # Backslash.
    pytest.param("/orders\\admin", TargetProblem.BACKSLASH, id="raw-backslash"),
    pytest.param("/orders%5Cadmin", TargetProblem.BACKSLASH, id="encoded-backslash-upper"),
    pytest.param("/orders%5cadmin", TargetProblem.BACKSLASH, id="encoded-backslash-lower"),
    pytest.param("/..\\admin", TargetProblem.BACKSLASH, id="dotdot-backslash"),
    # Control bytes, encoded and raw.
    pytest.param("/a%00b", TargetProblem.CONTROL_CHARACTER, id="nul"),
    pytest.param("/a%0ab", TargetProblem.CONTROL_CHARACTER, id="lf"),
    pytest.param("/a%0Ab", TargetProblem.CONTROL_CHARACTER, id="lf-upper"),
    pytest.param("/a%0db", TargetProblem.CONTROL_CHARACTER, id="cr"),
    pytest.param("/a%09b", TargetProblem.CONTROL_CHARACTER, id="tab"),
    pytest.param("/a%7fb", TargetProblem.CONTROL_CHARACTER, id="del"),
    pytest.param("/a%1bb", TargetProblem.CONTROL_CHARACTER, id="esc"),
    pytest.param("/a\x00b", TargetProblem.CONTROL_CHARACTER, id="raw-nul"),
    pytest.param("/a\tb", TargetProblem.CONTROL_CHARACTER, id="raw-tab"),
    pytest.param("/a\x7fb", TargetProblem.CONTROL_CHARACTER, id="raw-del"),
    # Not origin-form.
    pytest.param("http://evil/x", TargetProblem.NOT_ORIGIN_FORM, id="absolute-form"),
    pytest.param("*", TargetProblem.NOT_ORIGIN_FORM, id="asterisk-form"),
    pytest.param("127.0.0.1:22", TargetProblem.NOT_ORIGIN_FORM, id="authority-form"),
    pytest.param("", TargetProblem.NOT_ORIGIN_FORM, id="empty"),
    pytest.param("orders", TargetProblem.NOT_ORIGIN_FORM, id="relative"),
    pytest.param("%2Forders", TargetProblem.NOT_ORIGIN_FORM, id="encoded-leading-slash"),
    # Bad escapes.
    pytest.param("/%zz", TargetProblem.BAD_ESCAPE, id="non-hex"),
    pytest.param("/%4", TargetProblem.BAD_ESCAPE, id="short-at-end"),
    pytest.param("/%4/x", TargetProblem.BAD_ESCAPE, id="short-mid"),
    pytest.param("/%", TargetProblem.BAD_ESCAPE, id="bare-percent"),
    pytest.param("/%g1", TargetProblem.BAD_ESCAPE, id="first-digit-bad"),
    pytest.param("/%+1", TargetProblem.BAD_ESCAPE, id="sign"),
    # Characters outside pchar.
    pytest.param("/a b", TargetProblem.BAD_CHARACTER, id="raw-space"),
    pytest.param("/a?b", TargetProblem.BAD_CHARACTER, id="raw-question"),
    pytest.param("/a#b", TargetProblem.BAD_CHARACTER, id="raw-hash-in-path"),
    pytest.param('/a"b', TargetProblem.BAD_CHARACTER, id="quote"),
    pytest.param("/a<b>", TargetProblem.BAD_CHARACTER, id="angle-brackets"),
    pytest.param("/é", TargetProblem.BAD_CHARACTER, id="raw-non-ascii"),
    pytest.param("/\u2025", TargetProblem.BAD_CHARACTER, id="two-dot-leader"),
    pytest.param("/\uff0e\uff0e/x", TargetProblem.BAD_CHARACTER, id="fullwidth-dots"),
]


@pytest.mark.parametrize(("raw", "problem"), REFUSED)
def test_refused_path(raw: str, problem: TargetProblem) -> None:
    """A path that could be read two ways is refused with the problem that names why."""
    with pytest.raises(TargetError) as caught:
        canonicalize_path(raw)
    assert caught.value.problem is problem
    assert str(caught.value) == problem.value


TARGETS = [
    pytest.param("/orders", "/orders", None, id="no-query"),
    pytest.param("/orders?", "/orders", "", id="empty-query"),
    pytest.param("/orders?a=1&b=2", "/orders", "a=1&b=2", id="query"),
    pytest.param("/orders?a=%41", "/orders", "a=%41", id="query-escape-not-decoded"),
    pytest.param("/orders?a=%2f", "/orders", "a=%2f", id="query-encoded-slash-kept"),
    pytest.param("/orders?p=/../x", "/orders", "p=/../x", id="query-dots-kept"),
    pytest.param("/orders?a=1?b", "/orders", "a=1?b", id="query-second-question"),
    pytest.param("/orders?a;b=c", "/orders", "a;b=c", id="query-semicolon-kept"),
    pytest.param("/orders?a=%zz", "/orders", "a=%zz", id="query-bad-escape-kept"),
    pytest.param("/a/../b?x=1", "/b", "x=1", id="path-resolved-query-kept"),
    pytest.param("//orders/%2e?x", "/orders/", "x", id="path-canonical"),
]


@pytest.mark.parametrize(("raw", "path", "query"), TARGETS)
def test_canonical_target(raw: str, path: str, query: str | None) -> None:
    """The path is canonicalised and the query is returned exactly as sent."""
    assert canonicalize(raw) == CanonicalTarget(path, query)


TARGET_STRINGS = [
    pytest.param("/orders", "/orders", id="no-query"),
    pytest.param("/orders?", "/orders?", id="empty-query"),
    pytest.param("/x/../orders?a=%41", "/orders?a=%41", id="query"),
]


@pytest.mark.parametrize(("raw", "expected"), TARGET_STRINGS)
def test_target_string(raw: str, expected: str) -> None:
    """A canonical target prints as its path, then ``?`` and the query when one was sent."""
    assert str(canonicalize(raw)) == expected


REFUSED_TARGETS = [
    pytest.param("/orders#x", TargetProblem.FRAGMENT, id="fragment"),
    pytest.param("/orders?a=1#x", TargetProblem.FRAGMENT, id="fragment-after-query"),
    pytest.param("/orders#", TargetProblem.FRAGMENT, id="empty-fragment"),
    pytest.param("http://evil/x", TargetProblem.NOT_ORIGIN_FORM, id="absolute-form"),
    pytest.param("*", TargetProblem.NOT_ORIGIN_FORM, id="asterisk-form"),
    pytest.param("127.0.0.1:22", TargetProblem.NOT_ORIGIN_FORM, id="authority-form"),
    pytest.param("?a=1", TargetProblem.NOT_ORIGIN_FORM, id="query-only"),
    pytest.param("/orders?a b", TargetProblem.BAD_CHARACTER, id="query-space"),
    pytest.param("/orders?a=\x00", TargetProblem.BAD_CHARACTER, id="query-nul"),
    pytest.param("/orders?a=\n", TargetProblem.BAD_CHARACTER, id="query-lf"),
    pytest.param("/orders?a=\x7f", TargetProblem.BAD_CHARACTER, id="query-del"),
    pytest.param("/orders?a=é", TargetProblem.BAD_CHARACTER, id="query-non-ascii"),
    pytest.param("/../x?a=1", TargetProblem.ESCAPES_ROOT, id="path-escapes-root"),
    pytest.param("/a%2Fb?a=1", TargetProblem.ENCODED_SLASH, id="path-encoded-slash"),
    pytest.param("/a;b?a=1", TargetProblem.PATH_PARAMETER, id="path-parameter"),
]


@pytest.mark.parametrize(("raw", "problem"), REFUSED_TARGETS)
def test_refused_target(raw: str, problem: TargetProblem) -> None:
    """A target with a fragment, a bad query or a bad path is refused with its problem."""
    with pytest.raises(TargetError) as caught:
        canonicalize(raw)
    assert caught.value.problem is problem


_PATH_ALPHABET = st.sampled_from(
    ["/", "/", "/", ".", ".", "%", "2", "e", "E", "f", "F", "5", "c", "3", "b", "4", "1", "7",
     "a", "z", "~", "-", "_", ";", "\\", "?", "#", " ", ":", "@", "+", "é", "\x00"]
)  # fmt: skip
_PATH_LIKE = st.lists(_PATH_ALPHABET, max_size=40).map(lambda chars: "/" + "".join(chars))


@given(raw=st.one_of(st.text(), _PATH_LIKE))
@example(raw="/%2e%2e")
@example(raw="/a/%2e%2e/")
@example(raw="/%2541")
@example(raw="/a%2b/")
def test_canonical_form_is_a_fixed_point(raw: str) -> None:
    """Any text is either refused with `TargetError` or canonicalised to a stable, clean path."""
    try:
        result = canonicalize_path(raw)
    except TargetError:
        return
    assert canonicalize_path(result) == result
    assert result.startswith("/")
    assert "//" not in result
    segments = result.split("/")
    assert "." not in segments
    assert ".." not in segments


_TARGET_LIKE = st.tuples(_PATH_LIKE, st.none() | st.text(max_size=10)).map(
    lambda parts: parts[0] if parts[1] is None else f"{parts[0]}?{parts[1]}"
)


@given(raw=st.one_of(st.text(), _TARGET_LIKE))
def test_a_kept_target_is_the_one_worked_out_afresh(raw: str) -> None:
    """The second answer for a target (kept from the first) is the first's, refusals included:
    a refused target is never kept, and raises the same problem again."""
    first, second = _canonical_or_problem(raw), _canonical_or_problem(raw)
    target_module._targets.clear()
    assert first == second == _canonical_or_problem(raw)


def _canonical_or_problem(raw: str) -> CanonicalTarget | TargetProblem:
    try:
        return canonicalize(raw)
    except TargetError as refused:
        return refused.problem


@given(host=st.one_of(st.text(max_size=30), st.from_regex(target_module._HOST, fullmatch=True)))
def test_a_kept_host_name_is_the_one_worked_out_afresh(host: str) -> None:
    first = host_name(host)
    second = host_name(host)
    target_module._host_names.clear()
    assert first == second == host_name(host)


def test_kept_values_are_bounded_in_count_and_length() -> None:
    """A client sending ever new targets and hosts grows the kept values only to the bound, and
    a long value, or a refused one, is never kept."""
    target_module._targets.clear()
    target_module._host_names.clear()
    for number in range(3 * target_module._KEPT_MAX):
        canonicalize(f"/orders/{number}?q={number}")
        host_name(f"host-{number}.test:8080")
        assert len(target_module._targets) <= target_module._KEPT_MAX
        assert len(target_module._host_names) <= target_module._KEPT_MAX
    target_module._targets.clear()
    target_module._host_names.clear()
    long_path = "/" + "a" * target_module._KEPT_LENGTH
    assert canonicalize(long_path).path == long_path
    long_host = "h" * 248 + ".test:65535"  # 259 characters, the longest a Host may be
    assert host_name(long_host) == "h" * 248 + ".test"
    with pytest.raises(TargetError):
        canonicalize("/a/../../b")
    assert host_name("a@b") is None
    assert target_module._targets == {}
    assert target_module._host_names == {}
