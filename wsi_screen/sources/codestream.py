"""The size a compressed tile declares in its own header, read before the tile is decoded.

A tile of a DICOM slide is a JPEG, JPEG-LS or JPEG 2000 codestream. Its container (the DICOM
header) says 256 x 256 px, but the codestream carries its own size, and that is what a decoder
allocates: a forged 700-byte frame can declare 60,000 x 60,000 px. :func:`declared_size` reads that
size from the first bytes of the frame (JPEG ``SOFn`` and JPEG-LS ``SOF55`` markers, the JPEG 2000
``SIZ`` marker, a JP2 file's ``ihdr`` box) so that the reader can refuse a frame larger than its
container says before any decoder sees it.
"""

from __future__ import annotations

import struct

__all__ = ["declared_size"]

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
"""JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic; 0xF7: JPEG-LS)."""
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a length
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_SCAN_LIMIT = 1 << 16  # header bytes searched: a frame's markers before its scan are far fewer


def declared_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) the codestream in ``frame`` declares, or None if it is no JPEG family stream.

    Raises:
        ValueError: a JPEG or JPEG 2000 stream whose header is cut short or malformed.

    Example:
        >>> siz = bytes.fromhex("ff4fff510029") + bytes(2) + (256).to_bytes(4, "big") + (128).to_bytes(4, "big")
        >>> declared_size(siz + bytes(40))
        (256, 128)
    """
    if frame[:2] == b"\xff\xd8":
        return _jpeg_size(frame)
    if frame[:2] == b"\xff\x4f":
        return _j2k_size(frame, 0)
    if frame[:12] == _JP2_SIGNATURE:
        return _jp2_size(frame)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker of a JPEG or JPEG-LS stream."""
    pos = 2
    end = min(len(data), _SCAN_LIMIT)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            msg = f"JPEG header: no marker at byte {pos}"
            raise ValueError(msg)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # a scan before any frame header, or a broken length
            break
        pos += 2 + length
    msg = "JPEG header: no frame header (SOF marker) found"
    raise ValueError(msg)


def _j2k_size(data: bytes, start: int) -> tuple[int, int]:
    """Image size (Xsiz - XOsiz, Ysiz - YOsiz) from the SIZ marker right after SOC."""
    siz = data[start + 2 : start + 24]
    if len(siz) < 22 or siz[:2] != b"\xff\x51":
        msg = "JPEG 2000 header: no SIZ marker after the start of the codestream"
        raise ValueError(msg)
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", siz[6:22])
    if xsiz <= xo or ysiz <= yo:
        msg = f"JPEG 2000 header: empty image ({xsiz} x {ysiz} from offset {xo}, {yo})"
        raise ValueError(msg)
    return int(xsiz - xo), int(ysiz - yo)


def _jp2_size(data: bytes) -> tuple[int, int]:
    """Size from a JP2 file's boxes: the codestream's SIZ marker (the ``ihdr`` box as a fallback)."""
    pos = 0
    ihdr: tuple[int, int] | None = None
    end = min(len(data), _SCAN_LIMIT)
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if length == 1 and pos + 16 <= len(data):  # a 64-bit box length follows
            (length,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        if kind == b"jp2c":
            return _j2k_size(data, pos + header)
        if kind == b"jp2h":  # a super box: look inside it
            pos += header
            continue
        if kind == b"ihdr" and pos + 16 <= len(data):
            height, width = struct.unpack(">II", data[pos + 8 : pos + 16])
            ihdr = (int(width), int(height))
        if length == 0 or length < header:
            break
        pos += length
    if ihdr is not None:
        return ihdr
    msg = "JP2 header: no image header or codestream box found"
    raise ValueError(msg)
