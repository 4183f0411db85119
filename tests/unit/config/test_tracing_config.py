"""``tracing:`` in gateway.yaml: off when absent, typed values, every problem at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import TracingSettings, load
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, assert_issues, problems, write


def test_tracing_is_off_without_the_section(tmp_path: Path, keys: TestKeys) -> None:
    """No ``tracing:`` (or an empty one) means no tracing at all."""
    assert load(write(tmp_path, keys), ENVIRON).tracing is None
    empty = GATEWAY + "tracing:\n"
    assert load(write(tmp_path, keys, gateway=empty), ENVIRON).tracing is None


def test_tracing_settings_load_with_defaults(tmp_path: Path, keys: TestKeys) -> None:
    """Only the endpoint is required: service ``gateway``, every root trace sampled."""
    gateway = GATEWAY + "tracing: {endpoint: 'http://otel-collector:4318/v1/traces'}\n"
    settings = load(write(tmp_path, keys, gateway=gateway), ENVIRON).tracing
    assert settings == TracingSettings(endpoint="http://otel-collector:4318/v1/traces")
    assert (settings.service_name, settings.sampling_ratio, settings.headers) == (
        "gateway", 1.0, ()
    )  # fmt: skip


def test_tracing_headers_come_from_the_environment_and_are_never_shown(
    tmp_path: Path, keys: TestKeys
) -> None:
    """Export headers may carry an API key: ``${VAR}`` reads it, and repr never shows it."""
    gateway = GATEWAY + (
        "tracing:\n  endpoint: https://otlp.example.test/v1/traces\n  service_name: edge\n"
        "  sampling_ratio: 0.25\n  headers: {x-api-key: '${OTLP_KEY}'}\n"
    )
    environ = {**ENVIRON, "OTLP_KEY": "s3cret-key"}
    settings = load(write(tmp_path, keys, gateway=gateway), environ).tracing
    assert settings is not None
    assert settings.service_name == "edge"
    assert settings.sampling_ratio == 0.25
    assert settings.headers == (("x-api-key", "s3cret-key"),)
    assert "s3cret-key" not in repr(settings)


CASES = [
    pytest.param("tracing:\n  service_name: edge\n", (24, "missing required key 'endpoint'"),
                 id="no-endpoint"),
    pytest.param("tracing:\n  endpoint: http://otel-collector:4318\n", (24, "has no path"),
                 id="endpoint-without-path"),
    pytest.param("tracing:\n  endpoint: grpc://otel-collector:4317/v1/traces\n",
                 (24, "must be an http:// or https:// URL"), id="endpoint-not-http"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  sampling_ratio: 1.5\n",
                 (25, "from 0 to 1"), id="ratio-above-one"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  sampling_ratio: -0.1\n",
                 (25, "from 0 to 1"), id="ratio-negative"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  sampling_ratio: '10%'\n",
                 (25, "from 0 to 1"), id="ratio-a-string"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  sampling_ratio: true\n",
                 (25, "from 0 to 1"), id="ratio-a-boolean"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  headers: {'x key': v}\n",
                 (25, "'x key' is not a header name"), id="header-name-with-space"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  headers: {x-key: 7}\n",
                 (25, "single-line string"), id="header-value-not-a-string"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  headers: [x-key]\n",
                 (25, "mapping of header names"), id="headers-not-a-mapping"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces\n  sample_ratio: 0.1\n",
                 (25, "did you mean 'sampling_ratio'?"), id="misspelled-key"),
    pytest.param("tracing: http://c:4318/v1/traces\n", (23, "'tracing' must be a mapping"),
                 id="not-a-mapping"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces?api_key=q-5e0d1\n",
                 (24, "must not carry a query"), id="endpoint-with-query"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces?\n",
                 (24, "must not carry a query"), id="endpoint-with-empty-query"),
    pytest.param("tracing:\n  endpoint: http://c:4318/v1/traces#part\n",
                 (24, "must be an http:// or https:// URL"), id="endpoint-with-fragment"),
]  # fmt: skip


@pytest.mark.parametrize(("added", "expected"), CASES)
def test_bad_tracing_settings_are_reported_at_their_line(
    tmp_path: Path, keys: TestKeys, added: str, expected: tuple[int, str]
) -> None:
    """Each problem in ``tracing:`` is one issue at its line."""
    path = write(tmp_path, keys, gateway=GATEWAY + added)
    issues = problems(path)
    assert_issues(issues, [("gateway.yaml", *expected)], tmp_path)
    # A problem is printed and logged (a rejected reload): it never quotes a query's key.
    assert not any("q-5e0d1" in issue.message for issue in issues)
