"""Sans-I/O framing: 4-byte big-endian length prefix, then the payload.

:class:`FrameParser` is a push parser: ``feed(bytes)`` returns the complete frames. The
length is checked against the maximum frame size *before* anything is buffered for the frame,
so a peer cannot make us allocate a huge buffer.
"""

from __future__ import annotations

import struct

from rpc.errors import FrameTooLargeError

__all__ = ("DEFAULT_MAX_FRAME_SIZE", "FrameParser", "encode_frame")

DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
_LEN = struct.Struct(">I")


def encode_frame(payload: bytes) -> bytes:
    """Prefix a payload with its length."""
    return _LEN.pack(len(payload)) + payload


class FrameParser:
    """Splits a byte stream into frames."""

    __slots__ = ("_buf", "_max", "_need")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_frame_size
        self._need = -1  # length of the frame being read, -1 while reading a header

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; returns the frames now complete (raises FrameTooLargeError)."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        n = len(buf)
        while True:
            if self._need < 0:
                if n - pos < 4:
                    break
                (size,) = _LEN.unpack_from(buf, pos)
                if size > self._max:
                    raise FrameTooLargeError(
                        f"frame of {size} bytes exceeds the maximum of {self._max}"
                    )
                self._need = size
                pos += 4
            if n - pos < self._need:
                break
            frames.append(bytes(buf[pos : pos + self._need]))
            pos += self._need
            self._need = -1
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)
