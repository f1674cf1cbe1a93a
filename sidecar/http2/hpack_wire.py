"""HPACK's primitive representations (RFC 7541 5 and 6): integers with an N-bit prefix and
string literals, read and written, and the bits that open each field representation.

What it is: the shared vocabulary of :mod:`hpack_decoder` and :mod:`hpack_encoder`, with the
bounds every read checks (integers, string lengths against the block). What it is not: the
tables or the choice of a representation: those are the decoder's and the encoder's.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_TABLE_SIZE",
    "ENTRY_OVERHEAD",
    "HUFFMAN",
    "INDEXED",
    "LITERAL_INCREMENTAL",
    "LITERAL_NEVER_INDEXED",
    "LITERAL_NOT_INDEXED",
    "MAX_CONTINUATION_SHIFT",
    "MAX_INTEGER",
    "MAX_CACHED_LITERALS",
    "MAX_CACHED_LITERAL_LENGTH",
    "MIN_CACHED_LITERAL_LENGTH",
    "SINGLE_BYTES",
    "SIZE_UPDATE",
    "decode_integer",
    "decode_string",
    "encode_integer",
    "encode_string",
]

from typing import Final

from sidecar.http2.hpack_errors import HPACKError
from sidecar.http2.huffman import huffman_decode, huffman_encode, huffman_encoded_length

#: RFC 7541 4.1: an entry's size is its name and value lengths plus 32.
ENTRY_OVERHEAD: Final = 32
#: The initial SETTINGS_HEADER_TABLE_SIZE (RFC 9113 6.5.2).
DEFAULT_TABLE_SIZE: Final = 4096
#: Integers past this are refused: no HTTP/2 quantity needs more, and it keeps arithmetic on
#: machine-size ints.
MAX_INTEGER: Final = 1 << 31
#: A prefix byte then at most 6 continuation bytes (7 bits each): enough for MAX_INTEGER with
#: some zero padding, not enough to spin on a stream of 0x80 bytes.
MAX_CONTINUATION_SHIFT: Final = 35
#: An unindexed string (a credential, a big value) at least this long is kept, encoded and
#: decoded, in a small cache per encoder and per decoder: a token is sent on every call, and
#: Huffman-coding 1 KB costs tens of microseconds either way.
MIN_CACHED_LITERAL_LENGTH: Final = 64
#: The caches' bounds: entries (a full cache is emptied) and the longest string kept, so each
#: holds a few tens of KB at worst whatever a peer sends.
MAX_CACHED_LITERALS: Final = 4
MAX_CACHED_LITERAL_LENGTH: Final = 4096

# The first bits of each representation (RFC 7541 6), and of a Huffman-coded string (5.2).
INDEXED: Final = 0x80
LITERAL_INCREMENTAL: Final = 0x40
SIZE_UPDATE: Final = 0x20
LITERAL_NEVER_INDEXED: Final = 0x10
LITERAL_NOT_INDEXED: Final = 0x00
HUFFMAN: Final = 0x80
#: Each byte value as a bytes object, so the encoder appends one without allocating.
SINGLE_BYTES: Final[list[bytes]] = [bytes((value,)) for value in range(256)]


def decode_integer(data: bytes, pos: int, end: int, prefix_mask: int) -> tuple[int, int]:
    """The integer whose prefix byte is ``data[pos]``, and the position after it (RFC 7541 5.1)."""
    value = data[pos] & prefix_mask
    pos += 1
    if value < prefix_mask:
        return value, pos
    shift = 0
    while True:
        if pos >= end:
            raise HPACKError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if value > MAX_INTEGER:
            raise HPACKError("integer too large")
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > MAX_CONTINUATION_SHIFT:
            raise HPACKError("integer has too many continuation bytes")


def decode_string(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The string literal at ``data[pos]`` (Huffman-decoded if flagged), and the end position."""
    if pos >= end:
        raise HPACKError("truncated header block")
    huffman = data[pos] & HUFFMAN
    length, pos = decode_integer(data, pos, end, 0x7F)
    stop = pos + length
    if stop > end:
        raise HPACKError("truncated string literal")
    if huffman:
        return huffman_decode(data, pos, stop), stop
    return data[pos:stop], stop


def encode_integer(out: list[bytes], first_bits: int, prefix_mask: int, value: int) -> None:
    """Append ``value`` with an N-bit prefix (RFC 7541 5.1), ``first_bits`` above the prefix."""
    if value < prefix_mask:
        out.append(SINGLE_BYTES[first_bits | value])
        return
    out.append(SINGLE_BYTES[first_bits | prefix_mask])
    value -= prefix_mask
    while value >= 0x80:
        out.append(SINGLE_BYTES[(value & 0x7F) | 0x80])
        value >>= 7
    out.append(SINGLE_BYTES[value])


def encode_string(out: list[bytes], data: bytes) -> None:
    """Append a string literal, Huffman-encoded only when that is shorter."""
    huffman_length = huffman_encoded_length(data)
    if huffman_length < len(data):
        encode_integer(out, HUFFMAN, 0x7F, huffman_length)
        out.append(huffman_encode(data))
    else:
        encode_integer(out, 0, 0x7F, len(data))
        out.append(data)
