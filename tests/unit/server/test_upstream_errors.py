"""`fresh`: a kept error raised again as a copy, equal in every field and without a traceback."""

from __future__ import annotations

import pytest

from gateway.core.websocket_frames import CloseCode, FrameError
from gateway.server.upstream_errors import (
    BadResponse,
    BodyTooLarge,
    ConnectionGone,
    UpstreamFailure,
    fresh,
)

KEPT = [
    ConnectionGone(),
    BadResponse("header_bytes"),
    BodyTooLarge(),
    UpstreamFailure("orders", kind="timeout", detail="HeadTimeout"),
    FrameError(CloseCode.PROTOCOL_ERROR, "masked frame from the upstream"),
]


@pytest.mark.parametrize("kept", KEPT, ids=lambda error: type(error).__name__)
def test_a_fresh_copy_has_every_field_and_no_traceback(kept: BaseException) -> None:
    try:
        raise kept
    except type(kept):
        pass
    assert kept.__traceback__ is not None
    copy = fresh(kept)
    assert copy is not kept
    assert type(copy) is type(kept)
    assert copy.args == kept.args
    assert vars(copy) == vars(kept)
    assert copy.__traceback__ is None
    assert copy.__context__ is None
