"""The chunk layer of a .hnr file: signature, length/type/data/CRC framing, HEND at the end.

This layer is frozen for every format version (see HNR.md, "Versioning"), so any hinerc can tell
a damaged file from a newer one before it looks at what the chunks mean. The meaning of the
chunks lives in hnrfile.py.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from hinercodec.errors import CorruptFileError

# \x89: high bit, caught by 7-bit transfers; HNR: the name; \r\n and \n: caught by newline
# translation either way; \x1a: stops `type` on DOS before the binary data.
SIGNATURE = b"\x89HNR\r\n\x1a\n"

_HEAD = struct.Struct("<I4s")  # data length, type
_CRC = struct.Struct("<I")
_FRAMING = _HEAD.size + _CRC.size  # 12 bytes around each chunk's data
_MAX_LENGTH = 0xFFFFFFFF
_END = "HEND"


@dataclass(frozen=True)
class Chunk:
    """One chunk: a 4-letter type and its data (framing and CRC are added by write_chunks)."""

    type: str
    data: bytes


def _valid_type(chunk_type: str) -> bool:
    return len(chunk_type) == 4 and chunk_type.isascii() and chunk_type.isalpha()


def is_critical(chunk_type: str) -> bool:
    """Critical chunks (first letter uppercase) must be understood; ancillary ones may be skipped."""
    return chunk_type[:1].isupper()


def write_chunks(chunks: Sequence[Chunk]) -> bytes:
    """Signature plus framed chunks; the last chunk must be an empty HEND, so that the output
    always reads back with read_chunks."""
    if not chunks or chunks[-1] != Chunk(_END, b""):
        raise ValueError("the last chunk must be an empty HEND")
    parts = [SIGNATURE]
    for i, chunk in enumerate(chunks):
        if not _valid_type(chunk.type):
            raise ValueError(f"chunk type must be 4 ASCII letters, got {chunk.type!r}")
        if chunk.type == _END and i != len(chunks) - 1:
            raise ValueError("HEND may only be the last chunk")
        if len(chunk.data) > _MAX_LENGTH:
            raise ValueError(f"chunk {chunk.type!r} is larger than 4 GiB")
        kind = chunk.type.encode("ascii")
        parts += [_HEAD.pack(len(chunk.data), kind), bytes(chunk.data),
                  _CRC.pack(zlib.crc32(chunk.data, zlib.crc32(kind)))]
    return b"".join(parts)


def _bad_signature(head: bytes) -> str:
    """Name the transfer damage a wrong signature shows, if it shows one."""
    if head[:1] == b"\x09" and head[1:8] == SIGNATURE[1:8]:
        return "not a .hnr file (bad signature: high bit stripped by a 7-bit transfer)"
    if head[:4] == SIGNATURE[:4]:
        return "not a .hnr file (bad signature: newline bytes changed, was it copied in text mode?)"
    return "not a .hnr file (bad signature)"


def _show(raw: bytes) -> str:
    """A chunk type as printable text, with damaged bytes escaped."""
    return repr(raw)[2:-1]


def read_chunks(data: bytes) -> list[Chunk]:
    """All chunks up to and including HEND, after checking the signature, every length and CRC,
    and that nothing follows HEND. Raises CorruptFileError only."""
    view = memoryview(data).cast("B")
    size = len(view)
    if size < len(SIGNATURE):
        if bytes(view) == SIGNATURE[:size]:
            raise CorruptFileError(f"truncated .hnr file ({size} bytes, shorter than the signature)")
        raise CorruptFileError(_bad_signature(bytes(view[:8])))
    if view[:8] != SIGNATURE:
        raise CorruptFileError(_bad_signature(bytes(view[:8])))
    chunks: list[Chunk] = []
    pos = len(SIGNATURE)
    while True:
        if pos == size:
            raise CorruptFileError(f"truncated .hnr file (ends at byte {size} without a HEND chunk)")
        if size - pos < _HEAD.size:
            raise CorruptFileError(f"truncated .hnr file (chunk header at byte {pos} cut off)")
        length, raw_type = _HEAD.unpack_from(view, pos)
        if length > size - pos - _FRAMING:
            raise CorruptFileError(
                f"truncated .hnr file (chunk '{_show(raw_type)}' at byte {pos} declares {length} bytes, "
                f"only {max(size - pos - _FRAMING, 0)} remain)")
        body = bytes(view[pos + _HEAD.size:pos + _HEAD.size + length])
        (stored,) = _CRC.unpack_from(view, pos + _HEAD.size + length)
        if zlib.crc32(body, zlib.crc32(raw_type)) != stored:
            raise CorruptFileError(f"checksum mismatch in chunk '{_show(raw_type)}' at byte {pos}: file is damaged")
        chunk_type = raw_type.decode("latin-1")
        if not _valid_type(chunk_type):
            raise CorruptFileError(f"invalid chunk type '{_show(raw_type)}' at byte {pos}: file is damaged")
        chunks.append(Chunk(chunk_type, body))
        pos += _FRAMING + length
        if chunk_type == _END:
            if length:
                raise CorruptFileError(f"HEND chunk at byte {pos - _FRAMING - length} is not empty")
            if pos != size:
                raise CorruptFileError(f"{size - pos} bytes of data after the HEND chunk at byte {pos - _FRAMING}")
            return chunks


def chunk_offsets(chunks: Sequence[Chunk]) -> list[int]:
    """Byte offset of each chunk (its length field) in the file write_chunks makes of `chunks`."""
    out, pos = [], len(SIGNATURE)
    for chunk in chunks:
        out.append(pos)
        pos += _FRAMING + len(chunk.data)
    return out


def check_signature(stream: BinaryIO) -> int:
    """Read and check the signature at the start of a seekable stream; returns the first chunk's offset."""
    stream.seek(0)
    head = stream.read(len(SIGNATURE))
    if head != SIGNATURE:
        if len(head) < len(SIGNATURE) and head == SIGNATURE[:len(head)]:
            raise CorruptFileError(f"truncated .hnr file ({len(head)} bytes, shorter than the signature)")
        raise CorruptFileError(_bad_signature(head))
    return len(SIGNATURE)


def read_chunk_at(stream: BinaryIO, pos: int, size: int) -> tuple[Chunk, int]:
    """The one chunk at byte `pos` of a seekable stream of `size` bytes, CRC checked, and the offset
    after it: random access reads only the chunks it needs (tiles of a large file)."""
    if size - pos < _HEAD.size:
        raise CorruptFileError(f"truncated .hnr file (chunk header at byte {pos} cut off)")
    stream.seek(pos)
    length, raw_type = _HEAD.unpack(stream.read(_HEAD.size))
    if length > size - pos - _FRAMING:
        raise CorruptFileError(
            f"truncated .hnr file (chunk '{_show(raw_type)}' at byte {pos} declares {length} bytes, "
            f"only {max(size - pos - _FRAMING, 0)} remain)")
    body = stream.read(length)
    (stored,) = _CRC.unpack(stream.read(_CRC.size))
    if zlib.crc32(body, zlib.crc32(raw_type)) != stored:
        raise CorruptFileError(f"checksum mismatch in chunk '{_show(raw_type)}' at byte {pos}: file is damaged")
    chunk_type = raw_type.decode("latin-1")
    if not _valid_type(chunk_type):
        raise CorruptFileError(f"invalid chunk type '{_show(raw_type)}' at byte {pos}: file is damaged")
    return Chunk(chunk_type, body), pos + _FRAMING + length
