"""WebSocket framing (RFC 6455 section 5) for the gateway's side of an upstream tunnel: the
gateway is the upstream's client, so it masks what it sends and reads unmasked frames.

`MessageReader` turns the upstream's bytes into whole messages (fragments joined, control frames
passed through between them) and refuses what a client must refuse: masked frames, reserved bits
(no extension is ever negotiated), unknown opcodes, fragmented or oversized control frames, a
message over the size limit (1009), text that is not UTF-8 (1007).
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass

__all__ = [
    "CloseCode",
    "FrameError",
    "Message",
    "MessageReader",
    "Opcode",
    "close_payload",
    "encode_frame",
    "parse_close",
]


class Opcode(enum.IntEnum):
    """Frame opcodes."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """The close codes the gateway itself sends (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # shutdown, idle timeout
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005  # never sent: a close frame without a code
    ABNORMAL = 1006  # never sent: the connection dropped without a close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008  # the token expired
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class FrameError(Exception):
    """The upstream broke the protocol; ``code`` is the close code to answer with."""

    def __init__(self, code: CloseCode, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.code, self.problem)


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message (text, binary) or a control frame (close, ping, pong)."""

    opcode: Opcode
    data: bytes


def encode_frame(opcode: Opcode, payload: bytes, *, mask: bool = True) -> bytes:
    """One final frame; masked with a fresh key unless ``mask`` is false (a client masks)."""
    length = len(payload)
    head = bytearray([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _apply_mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    """The body of a close frame (reason cut to fit a control frame)."""
    return struct.pack("!H", code) + reason.encode()[:123]


def parse_close(payload: bytes) -> tuple[int, str]:
    """A close frame's code and reason (1005 when it has no code); raises `FrameError`."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close_payload")
    (code,) = struct.unpack("!H", payload[:2])
    if not (code in _SENDABLE or 3000 <= code <= 4999):
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close_code")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_DATA, "close_reason") from None
    return code, reason


# Codes an endpoint may put in a close frame (RFC 6455 section 7.4.1 and the IANA registry).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class MessageReader:
    """Incremental parser of an upstream's frames into messages, within ``max_message_size``."""

    __slots__ = ("_buffer", "_fragments", "_fragments_size", "_max", "_message_opcode")

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._message_opcode: Opcode | None = None

    def feed(self, data: bytes) -> list[Message]:
        """The messages ``data`` completes (raises `FrameError` on a protocol violation)."""
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return messages
            message = self._assemble(*frame)
            if message is not None:
                messages.append(message)

    def _next_frame(self) -> tuple[bool, Opcode, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        if first & 0x70:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "reserved_bits")
        if second & 0x80:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "masked_frame")
        try:
            opcode = Opcode(first & 0x0F)
        except ValueError:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "opcode") from None
        fin = bool(first & 0x80)
        length = second & 0x7F
        offset = 2
        if opcode >= Opcode.CLOSE and (length > 125 or not fin):
            raise FrameError(CloseCode.PROTOCOL_ERROR, "control_frame")
        if length == 126:
            if len(buffer) < 4:
                return None
            (length,) = struct.unpack_from("!H", buffer, 2)
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buffer, 2)
            offset = 10
            if length >> 63:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "length")
        if opcode < Opcode.CLOSE and self._fragments_size + length > self._max:
            raise FrameError(CloseCode.MESSAGE_TOO_BIG, "message_too_big")
        end = offset + length
        if len(buffer) < end:
            return None
        payload = bytes(buffer[offset:end])
        del buffer[:end]
        return fin, opcode, payload

    def _assemble(self, fin: bool, opcode: Opcode, payload: bytes) -> Message | None:
        if opcode >= Opcode.CLOSE:
            return Message(opcode, payload)
        if opcode == Opcode.CONTINUATION:
            if self._message_opcode is None:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "continuation")
        elif self._message_opcode is not None:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "interleaved_message")
        else:
            self._message_opcode = opcode
        self._fragments.append(payload)
        self._fragments_size += len(payload)
        if not fin:
            return None
        data = b"".join(self._fragments)
        message_opcode = self._message_opcode
        self._fragments.clear()
        self._fragments_size = 0
        self._message_opcode = None
        assert message_opcode is not None
        if message_opcode == Opcode.TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(CloseCode.INVALID_DATA, "text_not_utf8") from None
        return Message(message_opcode, data)


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    # XOR as one big integer: far faster in CPython than a per-byte loop.
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")
