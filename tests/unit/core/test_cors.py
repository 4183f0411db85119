"""`gateway.core.cors`: origin matching (exact, one-label patterns, null, *), the policy's
validation, preflight detection and answers, and the fields set on a CORS route's answers."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.core.cors import (
    ALWAYS_EXPOSED,
    CorsError,
    CorsHeaders,
    CorsPolicy,
    PreflightRequest,
    answer_preflight,
    apply_cors,
    canonical_origin,
    preflight_request,
    response_cors,
)

APP = "https://app.example.com"
POLICY = CorsPolicy(origins=(APP, "https://*.example.org", "http://localhost:3000"))


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("https://app.example.com:0443", "https://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://app.example.com:443", "http://app.example.com:443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://app.example.com/", None),
        ("https://app.example.com/x", None),
        ("https://user@app.example.com", None),
        ("https://app.example.com:99999", None),
        ("https://app.example.com:", None),
        ("https://app..example.com", None),
        ("https://-app.example.com", None),
        ("https://app.example.com\r\nSet-Cookie: a=b", None),
        ("https://app.example.com, https://evil.test", None),
        ("https://äpp.example.com", None),
        ("app.example.com", None),
        ("null", None),
        ("", None),
    ],
)
def test_origins_are_read_as_browsers_serialise_them(written: str, canonical: str | None) -> None:
    """Scheme and host compare case-insensitively, a default port is dropped, and anything that
    is not scheme://host[:port] is no origin at all."""
    assert canonical_origin(written) == canonical


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (APP, APP),
        ("HTTPS://APP.EXAMPLE.COM", APP),
        ("https://app.example.com:443", APP),
        ("https://a.example.org", "https://a.example.org"),
        ("https://A-1.Example.org", "https://a-1.example.org"),
        ("http://localhost:3000", "http://localhost:3000"),
        # Not the same origin: another scheme, port, label count or suffix.
        ("http://app.example.com", None),
        ("https://app.example.com:8443", None),
        ("https://app.example.com.evil.test", None),
        ("https://evilapp.example.com", None),
        ("https://example.org", None),
        ("https://a.b.example.org", None),
        ("https://.example.org", None),
        ("https://a.example.org.evil.test", None),
        ("https://aexample.org", None),
        ("http://a.example.org", None),
        ("https://a.example.org:8443", None),
        ("https://a.example.org:443", "https://a.example.org"),
        ("http://localhost:3001", None),
        ("http://localhost", None),
        ("null", None),
        ("https://app.example.com/", None),
        ("https://app.example.com%00", None),
        ("*", None),
        ("", None),
    ],
)
def test_only_listed_origins_and_one_label_patterns_match(origin: str, allowed: str | None) -> None:
    """The allowed value is the canonical origin; a pattern's * is exactly one DNS label."""
    assert POLICY.allowed_origin(origin) == allowed


def test_null_is_allowed_only_when_listed_and_star_allows_everyone() -> None:
    """``null`` (sandboxed frames, file: pages) is never implied by another entry; ``*``
    answers ``*`` to any origin."""
    assert POLICY.allowed_origin("null") is None
    assert CorsPolicy(origins=("null",)).allowed_origin("null") == "null"
    anyone = CorsPolicy(origins=("*",))
    assert anyone.allowed_origin("https://evil.test") == "*"
    assert anyone.allowed_origin("null") == "*"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"origins": ()}, "at least one"),
        ({"origins": ("*",), "credentials": True}, "credentials"),
        ({"origins": ("*", APP)}, "nothing else"),
        ({"origins": ("https://app.example.com/",)}, "not an origin"),
        ({"origins": ("https://app.example.com/api",)}, "not an origin"),
        ({"origins": ("app.example.com",)}, "not an origin"),
        ({"origins": ("https://*.com",)}, "two labels"),
        ({"origins": ("https://*",)}, "two labels"),
        ({"origins": ("https://a*.example.com",)}, "one DNS label"),
        ({"origins": ("https://*.*.example.com",)}, "one DNS label"),
        ({"origins": ("https://app.*.example.com",)}, "one DNS label"),
        ({"origins": ("ftp://*.example.com",)}, "http(s)"),
        ({"origins": ("*.example.com",)}, "http(s)"),
        ({"origins": (APP,), "headers": frozenset({"x_trace"})}, "not a header name"),
        ({"origins": (APP,), "expose_headers": ("X Trace",)}, "not a header name"),
        ({"origins": (APP,), "methods": frozenset({"get"})}, "not a method"),
        ({"origins": (APP,), "max_age": 86401}, "24h"),
    ],
)
def test_policies_browsers_would_refuse_or_that_say_too_much_are_errors(
    fields: dict[str, object], message: str
) -> None:
    """Every misconfiguration is refused when the policy is built, with what to write."""
    with pytest.raises(CorsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CorsPolicy(**fields)  # type: ignore[arg-type]


def test_credentials_go_with_listed_origins_and_patterns() -> None:
    """``credentials: true`` is fine with exact origins and patterns (the origin is echoed)."""
    policy = CorsPolicy(origins=(APP, "https://*.example.org"), credentials=True)
    assert policy.actual_fields(APP) == (
        ("Access-Control-Allow-Origin", APP),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", ", ".join(ALWAYS_EXPOSED)),
    )


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("OPTIONS", [("Origin", APP), ("Access-Control-Request-Method", "PUT")],
         PreflightRequest(APP, "PUT", ())),
        ("OPTIONS", [("origin", APP), ("access-control-request-method", " GET "),
                     ("Access-Control-Request-Headers", "Authorization, X-Trace,,"),
                     ("Access-Control-Request-Headers", "content-type")],
         PreflightRequest(APP, "GET", ("authorization", "x-trace", "content-type"))),
        ("OPTIONS", [("Access-Control-Request-Method", "GET")], None),
        ("OPTIONS", [("Origin", APP)], None),
        ("GET", [("Origin", APP), ("Access-Control-Request-Method", "GET")], None),
        ("options", [("Origin", APP), ("Access-Control-Request-Method", "GET")], None),
        # Two Origin fields (a browser sends one): an origin no policy lists, either order.
        ("OPTIONS", [("Origin", "https://evil.test"), ("ORIGIN", APP),
                     ("Access-Control-Request-Method", "GET")], PreflightRequest("", "GET", ())),
        ("OPTIONS", [("Origin", APP), ("origin", "https://evil.test"),
                     ("Access-Control-Request-Method", "GET")], PreflightRequest("", "GET", ())),
    ],
)  # fmt: skip
def test_a_preflight_is_options_with_origin_and_a_requested_method(
    method: str, headers: list[tuple[str, str]], expected: PreflightRequest | None
) -> None:
    """Anything else (a plain OPTIONS, a GET with the fields) is an ordinary request."""
    assert preflight_request(method, headers) == expected


PREFLIGHT_POLICY = CorsPolicy(
    origins=(APP,), headers=frozenset({"content-type"}), max_age=600, credentials=True
)


@pytest.mark.parametrize(
    ("preflight", "protected", "expected"),
    [
        (PreflightRequest("https://evil.test", "GET", ()), True, "cors_origin_not_allowed"),
        (PreflightRequest("null", "GET", ()), True, "cors_origin_not_allowed"),
        (PreflightRequest(APP, "DELETE", ()), True, "cors_method_not_allowed"),
        (PreflightRequest(APP, "get", ()), True, "cors_method_not_allowed"),
        (PreflightRequest(APP, "GET\r\nX: y", ()), True, "cors_method_not_allowed"),
        (PreflightRequest(APP, "GET", ("x-trace",)), True, "cors_headers_not_allowed"),
        (PreflightRequest(APP, "GET", ("authorization",)), False, "cors_headers_not_allowed"),
        (PreflightRequest(APP, "GET", ("authorization", "content-type")), True, None),
        (PreflightRequest(APP, "POST", ("content-type",)), False, None),
    ],
)
def test_a_preflight_is_refused_for_its_origin_method_or_headers(
    preflight: PreflightRequest, protected: bool, expected: str | None
) -> None:
    """Authorization is implied on a protected route only; methods default to the route's."""
    answer = answer_preflight(
        PREFLIGHT_POLICY, preflight, route_methods=frozenset({"GET", "POST"}), protected=protected
    )
    if expected is None:
        assert not isinstance(answer, str)
    else:
        assert answer == expected


def test_an_allowed_preflight_gets_every_field_and_varies_by_what_it_asked() -> None:
    """The requested method, the allowed headers, credentials, max-age and Vary."""
    answer = answer_preflight(
        PREFLIGHT_POLICY, PreflightRequest(APP, "GET", ("authorization",)),
        route_methods=None, protected=True,
    )  # fmt: skip
    assert answer == (
        ("Access-Control-Allow-Origin", APP),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET"),
        ("Access-Control-Allow-Headers", "authorization, content-type"),
        ("Access-Control-Max-Age", "600"),
        ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    )


def test_the_policy_methods_limit_a_preflight_within_the_route() -> None:
    """``methods`` in the policy narrows what a preflight may ask for."""
    policy = CorsPolicy(origins=(APP,), methods=frozenset({"GET"}))
    ask = PreflightRequest(APP, "POST", ())
    answer = answer_preflight(policy, ask, route_methods=None, protected=True)
    assert answer == "cors_method_not_allowed"


def test_response_fields_depend_on_the_origin_only_on_a_cors_route() -> None:
    """No policy: None (upstream fields untouched); no or a foreign Origin: no fields, but the
    answer still varies by Origin."""
    assert response_cors(None, APP) is None
    assert response_cors(POLICY, None) == CorsHeaders()
    assert response_cors(POLICY, "https://evil.test") == CorsHeaders()
    allowed = response_cors(POLICY, "https://a.example.org")
    assert allowed is not None
    assert dict(allowed.fields)["Access-Control-Allow-Origin"] == "https://a.example.org"


def test_expose_headers_list_the_gateways_fields_and_the_operators_once() -> None:
    """Configured names come after the gateway's own, duplicates (any case) once."""
    policy = CorsPolicy(origins=(APP,), expose_headers=("X-Request-ID", "retry-after"))
    exposed = dict(policy.actual_fields(APP))["Access-Control-Expose-Headers"]
    assert exposed == "WWW-Authenticate, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID"


@pytest.mark.parametrize(
    ("upstream", "vary"),
    [
        ([], ["Origin"]),
        ([("Vary", "Accept-Encoding")], ["Accept-Encoding", "Origin"]),
        ([("Vary", "accept-encoding, ORIGIN")], ["accept-encoding, ORIGIN"]),
        ([("vary", "Accept"), ("Vary", "origin")], ["Accept", "origin"]),
        ([("Vary", "*")], ["*"]),
    ],
)
def test_vary_origin_is_appended_never_clobbering_the_upstreams(
    upstream: list[tuple[str, str]], vary: list[str]
) -> None:
    """An upstream's Vary stays; Origin is added once unless already listed (or ``*``)."""
    headers: CIMultiDict[str] = CIMultiDict(upstream)
    apply_cors(headers, CorsHeaders())
    assert headers.getall("Vary") == vary


def test_the_upstreams_cors_fields_are_replaced_by_the_gateways() -> None:
    """Every Access-Control-* of the upstream goes (any case, repeated), ours are set once."""
    headers: CIMultiDict[str] = CIMultiDict(
        [
            ("Access-Control-Allow-Origin", "*"),
            ("access-control-allow-origin", "https://evil.test"),
            ("ACCESS-CONTROL-ALLOW-CREDENTIALS", "true"),
            ("Access-Control-Expose-Headers", "X-Secret"),
            ("Content-Type", "application/json"),
        ]
    )
    apply_cors(headers, CorsHeaders((("Access-Control-Allow-Origin", APP),)))
    assert sorted(headers.items()) == [
        ("Access-Control-Allow-Origin", APP),
        ("Content-Type", "application/json"),
        ("Vary", "Origin"),
    ]
    stripped: CIMultiDict[str] = CIMultiDict([("Access-Control-Allow-Origin", "*")])
    apply_cors(stripped, CorsHeaders())  # a foreign origin: the upstream's * must not pass
    assert "Access-Control-Allow-Origin" not in stripped
