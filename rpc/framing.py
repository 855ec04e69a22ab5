"""Sans-I/O framing: 4-byte big-endian length prefix, then the payload.

:class:`FrameParser` is a push parser: ``feed(bytes)`` returns the complete frames. The
length is checked against the maximum frame size *before* anything is buffered for the frame,
so a peer cannot make us allocate a huge buffer.
"""

from __future__ import annotations

import struct

from rpc.errors import FrameTooLargeError

__all__ = ("DEFAULT_MAX_FRAME_SIZE", "FrameParser", "encode_frame", "frame_header")

DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
_LEN = struct.Struct(">I")
_pack_len = _LEN.pack
_unpack_len = _LEN.unpack_from


def frame_header(size: int) -> bytes:
    """The 4-byte length prefix of a payload of `size` bytes (send it, then the payload)."""
    return _pack_len(size)


def encode_frame(payload: bytes) -> bytes:
    """Prefix a payload with its length.

    Args:
        payload: The frame payload (an encoded packet).

    Returns:
        The frame: 4-byte big-endian length, then the payload.
    """
    return _pack_len(len(payload)) + payload


class FrameParser:
    """Splits a byte stream into frames.

    Complete frames that precede an oversized length header in the same chunk are still
    returned; the :class:`FrameTooLargeError` is then raised by the next :meth:`feed` (see
    :attr:`error`).
    """

    __slots__ = ("_buf", "_error", "_max", "_need")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        """Create a parser.

        Args:
            max_frame_size: The largest payload accepted, in bytes.
        """
        self._buf = bytearray()
        self._max = max_frame_size
        self._need = -1  # length of the frame being read, -1 while reading a header
        self._error: FrameTooLargeError | None = None

    @property
    def max_frame_size(self) -> int:
        """The largest payload accepted."""
        return self._max

    @property
    def error(self) -> FrameTooLargeError | None:
        """The error the next :meth:`feed` raises (an oversized frame was announced)."""
        return self._error

    def feed(self, data: bytes, limit: int = 0) -> list[bytes]:
        """Add received bytes and return the frames now complete.

        Args:
            data: The bytes received (may be empty, to collect frames left buffered).
            limit: Return at most this many frames (0: all); the others stay buffered and
                come out of the next call.

        Returns:
            The payloads of the complete frames, in order.

        Raises:
            FrameTooLargeError: A length header exceeds the maximum frame size (checked
                before the frame is buffered). The stream cannot be trusted afterwards: every
                later call raises it again.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        src: bytes | bytearray
        if buf:
            buf += data
            src = buf
        else:
            src = data
        n = len(src)
        frames: list[bytes] = []
        pos = 0
        need = self._need
        view = memoryview(src) if src is buf else None
        try:
            while True:
                if need < 0:
                    if n - pos < 4:
                        break
                    (size,) = _unpack_len(src, pos)
                    if size > self._max:
                        err = FrameTooLargeError(
                            f"frame of {size} bytes exceeds the maximum of {self._max}"
                        )
                        self._error = err
                        if frames:
                            break
                        raise err
                    need = size
                    pos += 4
                if n - pos < need:
                    break
                end = pos + need
                frames.append(bytes(view[pos:end] if view is not None else src[pos:end]))
                pos = end
                need = -1
                if limit and len(frames) >= limit:
                    break
        finally:
            if view is not None:
                view.release()
            self._need = need
        if src is buf:
            if pos:
                del buf[:pos]
        elif pos < n:
            buf += memoryview(src)[pos:]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)
