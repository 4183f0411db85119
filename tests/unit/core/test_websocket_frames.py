"""WebSocket framing on the gateway's side of an upstream tunnel (RFC 6455 section 5)."""

from __future__ import annotations

import struct

import pytest

from gateway.core.websocket_frames import (
    CloseCode,
    FrameError,
    Message,
    MessageReader,
    Opcode,
    close_payload,
    encode_frame,
    parse_close,
)


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame as a server sends it (any opcode, FIN and reserved bits)."""
    length_and_payload = encode_frame(Opcode.BINARY, payload, mask=False)[1:]
    return bytes([(0x80 if fin else 0) | rsv | opcode]) + length_and_payload


def unmask(data: bytes) -> tuple[int, bytes]:
    """Decode one masked frame a client sent: (first byte, payload)."""
    length = data[1] & 0x7F
    offset = 2
    if length == 126:
        (length,) = struct.unpack_from("!H", data, 2)
        offset = 4
    elif length == 127:
        (length,) = struct.unpack_from("!Q", data, 2)
        offset = 10
    assert data[1] & 0x80, "a client's frame is masked"
    key = data[offset : offset + 4]
    body = data[offset + 4 : offset + 4 + length]
    return data[0], bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_masked_frames_round_trip(size: int) -> None:
    """Every length encoding masks and unmasks back to the payload."""
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    first, body = unmask(encode_frame(Opcode.BINARY, payload))
    assert first == 0x82
    assert body == payload


@pytest.mark.parametrize("size", [0, 125, 126, 65536])
def test_reader_reads_unmasked_frames_byte_by_byte(size: int) -> None:
    """Frames split at any byte are reassembled."""
    payload = b"x" * size
    data = frame(Opcode.BINARY, payload) + frame(Opcode.TEXT, b"hi")
    reader = MessageReader(1 << 20)
    messages = []
    for i in range(len(data)):
        messages += reader.feed(data[i : i + 1])
    assert messages == [Message(Opcode.BINARY, payload), Message(Opcode.TEXT, b"hi")]


def test_fragments_join_and_control_frames_pass_between() -> None:
    """A fragmented message is one message; a ping in the middle comes out first."""
    data = (
        frame(Opcode.TEXT, b"he", fin=False)
        + frame(Opcode.PING, b"p")
        + frame(Opcode.CONTINUATION, b"ll", fin=False)
        + frame(Opcode.CONTINUATION, b"o")
    )
    assert MessageReader(100).feed(data) == [
        Message(Opcode.PING, b"p"),
        Message(Opcode.TEXT, b"hello"),
    ]


VIOLATIONS = [
    (frame(Opcode.TEXT, b"x", rsv=0x40), CloseCode.PROTOCOL_ERROR, "reserved_bits"),
    (encode_frame(Opcode.TEXT, b"x", mask=True), CloseCode.PROTOCOL_ERROR, "masked_frame"),
    (bytes([0x83, 0]), CloseCode.PROTOCOL_ERROR, "opcode"),
    (bytes([0x8B, 0]), CloseCode.PROTOCOL_ERROR, "opcode"),
    (frame(Opcode.PING, b"x", fin=False), CloseCode.PROTOCOL_ERROR, "control_frame"),
    (bytes([0x89, 126, 0, 126]) + b"x" * 126, CloseCode.PROTOCOL_ERROR, "control_frame"),
    (frame(Opcode.CONTINUATION, b"x"), CloseCode.PROTOCOL_ERROR, "continuation"),
    (
        frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.BINARY, b"b"),
        CloseCode.PROTOCOL_ERROR,
        "interleaved_message",
    ),
    (bytes([0x82, 127]) + struct.pack("!Q", 1 << 63), CloseCode.PROTOCOL_ERROR, "length"),
    (frame(Opcode.BINARY, b"x" * 11), CloseCode.MESSAGE_TOO_BIG, "message_too_big"),
    (
        frame(Opcode.BINARY, b"x" * 6, fin=False) + frame(Opcode.CONTINUATION, b"x" * 5),
        CloseCode.MESSAGE_TOO_BIG,
        "message_too_big",
    ),
    (frame(Opcode.TEXT, b"\xff"), CloseCode.INVALID_DATA, "text_not_utf8"),
]


@pytest.mark.parametrize(
    ("data", "code", "problem"),
    [pytest.param(*case, id=f"{case[2]}-{n}") for n, case in enumerate(VIOLATIONS)],
)
def test_protocol_violations(data: bytes, code: CloseCode, problem: str) -> None:
    """What a client must refuse from a server is a FrameError with the close code to send."""
    with pytest.raises(FrameError) as caught:
        MessageReader(10).feed(data)
    assert (caught.value.code, caught.value.problem) == (code, problem)


def test_oversized_message_is_refused_from_its_header() -> None:
    """A frame announcing more than the limit is refused before its payload arrives."""
    with pytest.raises(FrameError):
        MessageReader(10).feed(bytes([0x82, 127]) + struct.pack("!Q", 1 << 40))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", (1005, "")),
        (close_payload(1000, "bye"), (1000, "bye")),
        (close_payload(4001), (4001, "")),
    ],
)
def test_close_payloads(payload: bytes, expected: tuple[int, str]) -> None:
    """Close frames give their code and reason (1005 when there is no code)."""
    assert parse_close(payload) == expected


@pytest.mark.parametrize(
    "payload", [b"\x03", struct.pack("!H", 1005), struct.pack("!H", 999), b"\x03\xe8\xff"]
)
def test_bad_close_payloads(payload: bytes) -> None:
    """A one-byte close, a reserved or unknown code, or a reason that is not UTF-8 is refused."""
    with pytest.raises(FrameError):
        parse_close(payload)
