"""Pure tests of `gateway.core.protocol`: framing and expectations refused before deciding."""

from __future__ import annotations

import pytest

from gateway.core.protocol import expects_continue, protocol_refusal

H11 = (1, 1)
H10 = (1, 0)


@pytest.mark.parametrize(
    ("headers", "version", "status"),
    [
        pytest.param([], H11, None, id="nothing"),
        pytest.param([("Transfer-Encoding", "chunked")], H11, None, id="chunked"),
        pytest.param([("transfer-encoding", "Chunked")], H11, None, id="chunked-any-case"),
        pytest.param([("Transfer-Encoding", "gzip, chunked")], H11, 501, id="gzip-chunked"),
        pytest.param([("Transfer-Encoding", "chunked, chunked")], H11, 501, id="chunked-twice"),
        pytest.param([("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")], H11, 501,
                     id="split-over-two-headers"),
        pytest.param([("Transfer-Encoding", "chunked, gzip")], H11, 501, id="chunked-not-last"),
        pytest.param([("Transfer-Encoding", "identity")], H11, 501, id="identity"),
        pytest.param([("Transfer-Encoding", "chunked")], H10, 400, id="any-on-http10"),
        pytest.param([("Expect", "100-continue")], H11, None, id="continue"),
        pytest.param([("Expect", "100-Continue")], H11, None, id="continue-any-case"),
        pytest.param([("Expect", "200-ok")], H11, 417, id="other-expectation"),
        pytest.param([("Expect", "200-ok")], H10, None, id="expect-ignored-on-http10"),
        pytest.param([("X-Note", "caf\udcc3"), ("Expect", "200-ok")], H11, 400,
                     id="bad-header-value-first"),
    ],
)  # fmt: skip
def test_protocol_refusal(
    headers: list[tuple[str, str]], version: tuple[int, int], status: int | None
) -> None:
    """Only a single, final ``chunked`` coding on HTTP/1.1 and only ``100-continue`` pass."""
    refusal = protocol_refusal(headers, version)
    assert (refusal.status if refusal else None) == status


def test_expects_continue_only_on_http11() -> None:
    """``100-continue`` is an HTTP/1.1 expectation."""
    assert expects_continue("100-continue", H11)
    assert not expects_continue("100-continue", H10)
    assert not expects_continue(None, H11)
