"""The HPACK Huffman code (RFC 7541 Appendix B): encoding and table-driven decoding of strings.

What it is: the canonical code as two constant tables, an encoder, and a decoder driven by a
transition table built once at import (a 4-bit nibble state machine over the code's tree, as
nghttp2 does), so decoding is two table reads per input byte.
What it is not: HPACK's string framing (length prefix, Huffman flag): that is :mod:`hpack`.
"""

from __future__ import annotations

__all__ = ["huffman_decode", "huffman_encode", "huffman_encoded_length"]

from typing import Final

from sidecar.http2.hpack_errors import HPACKError

# fmt: off
#: The code of each symbol, 0-255 then EOS (256), right-aligned in an int.
HUFFMAN_CODES: Final[tuple[int, ...]] = (
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
    0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
    0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
    0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
    0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
    0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
    0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
    0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
    0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
    0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
    0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
    0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
    0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
    0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
    0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
    0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
    0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
    0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
    0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
    0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
    0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
    0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
    0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
    0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
    0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
    0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
    0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
    0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
    0x3fffffff,
)

#: The bit length of each symbol's code (5 to 30).
HUFFMAN_LENGTHS: Final[tuple[int, ...]] = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
)
# fmt: on

EOS: Final = 256

# A decoding transition packs: the next state (a node of the code's tree, 8 bits), whether a
# symbol was completed by this nibble (at most one: the shortest code is 5 bits) and which, and
# whether the new state may end a string (the root, or up to 7 one-bits of padding: RFC 7541 5.2).
_STATE_MASK: Final = 0xFF
_EMITS: Final = 1 << 8
_SYMBOL_SHIFT: Final = 9
_ACCEPTS: Final = 1 << 17
_FAILS: Final = 1 << 18


def _build_decoder_table() -> list[int]:
    """The nibble transitions of every internal node: 256 nodes x 16 nibbles."""
    # The tree: children[node] = [zero_child, one_child]; a child >= 0 is an internal node,
    # a child < 0 is the leaf of symbol -child - 1.
    children: list[list[int]] = [[0, 0]]
    for symbol in range(257):
        code = HUFFMAN_CODES[symbol]
        length = HUFFMAN_LENGTHS[symbol]
        node = 0
        for bit_index in range(length - 1, -1, -1):
            bit = (code >> bit_index) & 1
            if bit_index == 0:
                children[node][bit] = -symbol - 1
            else:
                if children[node][bit] == 0:
                    children.append([0, 0])
                    children[node][bit] = len(children) - 1
                node = children[node][bit]
    # States reached by k one-bits from the root (k <= 7) may end a string: that is padding.
    accepting = {0}
    node = 0
    for _ in range(7):
        node = children[node][1]
        accepting.add(node)
    table = [0] * (len(children) * 16)
    for state in range(len(children)):
        for nibble in range(16):
            node = state
            entry = 0
            for bit_index in range(3, -1, -1):
                child = children[node][(nibble >> bit_index) & 1]
                if child < 0:
                    symbol = -child - 1
                    if symbol == EOS:
                        entry |= _FAILS
                        break
                    entry |= _EMITS | (symbol << _SYMBOL_SHIFT)
                    node = 0
                else:
                    node = child
            if not entry & _FAILS:
                entry |= node
                if node in accepting:
                    entry |= _ACCEPTS
            table[state * 16 + nibble] = entry
    return table


_DECODER_TABLE: Final[list[int]] = _build_decoder_table()


def huffman_encoded_length(data: bytes) -> int:
    """The length in bytes of ``data`` once Huffman-encoded."""
    bits = 0
    for byte in data:
        bits += HUFFMAN_LENGTHS[byte]
    return (bits + 7) >> 3


def huffman_encode(data: bytes) -> bytes:
    """The Huffman encoding of ``data``, padded with one-bits (the prefix of EOS)."""
    # The accumulator keeps fewer than 8 pending bits between symbols (37 at most while one is
    # added), so it stays a machine-size int however long the string.
    out: list[int] = []  # not a bytearray: list.append is a direct call once compiled
    acc = 0
    pending = 0
    for byte in data:
        length = HUFFMAN_LENGTHS[byte]
        acc = (acc << length) | HUFFMAN_CODES[byte]
        pending += length
        while pending >= 8:
            pending -= 8
            out.append((acc >> pending) & 0xFF)
        acc &= (1 << pending) - 1
    if pending:
        out.append(((acc << (8 - pending)) | (0xFF >> pending)) & 0xFF)
    return bytes(out)


def huffman_decode(data: bytes, start: int, end: int) -> bytes:
    """Decode ``data[start:end]``; HPACKError on EOS in the string or invalid padding."""
    table = _DECODER_TABLE
    out: list[int] = []  # not a bytearray: see hpack.Encoder.encode
    state = 0
    entry = _ACCEPTS
    pos = start
    while pos < end:
        byte = data[pos]
        pos += 1
        entry = table[(state << 4) | (byte >> 4)]
        if entry & _EMITS:
            out.append((entry >> _SYMBOL_SHIFT) & 0xFF)
        elif entry & _FAILS:
            raise HPACKError("EOS symbol in a Huffman-encoded string")
        entry = table[((entry & _STATE_MASK) << 4) | (byte & 0x0F)]
        if entry & _EMITS:
            out.append((entry >> _SYMBOL_SHIFT) & 0xFF)
        elif entry & _FAILS:
            raise HPACKError("EOS symbol in a Huffman-encoded string")
        state = entry & _STATE_MASK
    if not entry & _ACCEPTS:
        raise HPACKError("invalid padding in a Huffman-encoded string")
    return bytes(out)
