"""HPACK (RFC 7541): header blocks decoded into and encoded from ``list[tuple[bytes, bytes]]``.

What it is: one :class:`Decoder` and one :class:`Encoder` per connection direction, each with its
dynamic table, written for mypyc (typed locals, int arithmetic, bytes indexing, no formatting on
the hot path). Names are lowercase bytes, values bytes. Every input bound is checked: integers,
string lengths against the block, table size updates, the decoded list's size (RFC 9113 6.5.2).
What it is not: HTTP/2 semantics (pseudo-headers, forbidden fields): :mod:`header_rules` checks
those; nor framing: a block arrives here already joined from HEADERS and CONTINUATION frames.

After any :class:`HPACKError` the decoder's table no longer matches the peer's: the connection
must end (COMPRESSION_ERROR), it cannot decode another block.
"""

from __future__ import annotations

__all__ = ["SENSITIVE_NAMES", "Decoder", "Encoder", "HPACKError", "OversizedHeaderListError"]

from typing import Final

from sidecar.http2.hpack_errors import HPACKError, OversizedHeaderListError
from sidecar.http2.hpack_static import (
    STATIC_BY_NAME,
    STATIC_BY_NAME_VALUE,
    STATIC_TABLE,
    STATIC_TABLE_LENGTH,
)
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
#: The encoder's own ceiling on its table, whatever larger size the peer allows: a bigger table
#: buys little on gRPC's few repeated headers and costs memory per connection.
ENCODER_TABLE_CAP: Final = 4096
#: Values longer than this are sent without indexing, so one big value does not flush the table.
MAX_INDEXED_VALUE_LENGTH: Final = 256
#: An unindexed string (a credential, a big value) at least this long is kept, encoded and
#: decoded, in a small cache per encoder and per decoder: a token is sent on every call, and
#: Huffman-coding 1 KB costs tens of microseconds either way.
MIN_CACHED_LITERAL_LENGTH: Final = 64
#: The caches' bounds: entries (a full cache is emptied) and the longest string kept, so each
#: holds a few tens of KB at worst whatever a peer sends.
MAX_CACHED_LITERALS: Final = 4
MAX_CACHED_LITERAL_LENGTH: Final = 4096
#: Fields a peer must never put in its table (RFC 7541 7.1.3): credentials stay out of
#: compression state, where a compression oracle could probe them.
SENSITIVE_NAMES: Final[frozenset[bytes]] = frozenset(
    (b"authorization", b"proxy-authorization", b"cookie", b"set-cookie")
)

# The first bits of each representation (RFC 7541 6).
_INDEXED: Final = 0x80
_LITERAL_INCREMENTAL: Final = 0x40
_SIZE_UPDATE: Final = 0x20
_LITERAL_NEVER_INDEXED: Final = 0x10
_LITERAL_NOT_INDEXED: Final = 0x00
_HUFFMAN: Final = 0x80
# Each byte value as a bytes object, so the encoder appends one without allocating.
_SINGLE_BYTES: Final[list[bytes]] = [bytes((value,)) for value in range(256)]
# Below every static index (stored negated) and every insertion number: "in neither table".
_NOWHERE: Final = -1000


def _decode_integer(data: bytes, pos: int, end: int, prefix_mask: int) -> tuple[int, int]:
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


def _decode_string(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The string literal at ``data[pos]`` (Huffman-decoded if flagged), and the end position."""
    if pos >= end:
        raise HPACKError("truncated header block")
    huffman = data[pos] & _HUFFMAN
    length, pos = _decode_integer(data, pos, end, 0x7F)
    stop = pos + length
    if stop > end:
        raise HPACKError("truncated string literal")
    if huffman:
        return huffman_decode(data, pos, stop), stop
    return data[pos:stop], stop


class Decoder:
    """Decodes the header blocks one peer sends on one connection, in order."""

    def __init__(
        self, max_header_list_size: int = 65536, max_table_size: int = DEFAULT_TABLE_SIZE
    ) -> None:
        #: RFC 9113 6.5.2 size (sum of name + value + 32) past which decode raises.
        self.max_header_list_size = max_header_list_size
        #: Our SETTINGS_HEADER_TABLE_SIZE: a table size update above it is an error.
        self.max_allowed_table_size = max_table_size
        # The dynamic table, oldest first from _head; evicted slots before _head are dropped in
        # bulk now and then, so each eviction is O(1) whatever the table's length.
        self._entries: list[tuple[bytes, bytes]] = []
        self._head = 0
        self._size = 0
        self._max_size = max_table_size
        # Huffman octets -> decoded value, for long unindexed strings only
        self._huffman_cache: dict[bytes, bytes] = {}

    def decode(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The header list of one complete header block; HPACKError if it is malformed."""
        headers: list[tuple[bytes, bytes]] = []
        end = len(data)
        pos = 0
        list_size = 0
        limit = self.max_header_list_size
        # A size update may only open a block (RFC 7541 4.2); one is owed if our allowed size
        # fell below the table's since the last block.
        updates_allowed = True
        update_owed = self._max_size > self.max_allowed_table_size
        while pos < end:
            first = data[pos]
            if first & _INDEXED:
                index, pos = _decode_integer(data, pos, end, 0x7F)
                header = self._indexed(index)
            elif first & _LITERAL_INCREMENTAL:
                header, pos = self._literal(data, pos, end, 0x3F, False)
                self._add(header[0], header[1])
            elif first & _SIZE_UPDATE:
                if not updates_allowed:
                    raise HPACKError("dynamic table size update after the start of the block")
                size, pos = _decode_integer(data, pos, end, 0x1F)
                if size > self.max_allowed_table_size:
                    raise HPACKError("dynamic table size update above the allowed size")
                self._resize(size)
                update_owed = False
                continue
            else:
                # without indexing (0000) or never indexed (0001): the same to a decoder
                header, pos = self._literal(data, pos, end, 0x0F, True)
            if update_owed:
                raise HPACKError("missing dynamic table size update")
            updates_allowed = False
            list_size += len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if list_size > limit:
                raise OversizedHeaderListError("header list larger than allowed")
            headers.append(header)
        if update_owed:
            raise HPACKError("missing dynamic table size update")
        return headers

    def _indexed(self, index: int) -> tuple[bytes, bytes]:
        if index == 0:
            raise HPACKError("index 0")
        if index <= STATIC_TABLE_LENGTH:
            return STATIC_TABLE[index - 1]
        entries = self._entries
        from_newest = index - STATIC_TABLE_LENGTH
        if from_newest > len(entries) - self._head:
            raise HPACKError("index past the dynamic table")
        return entries[len(entries) - from_newest]

    def _literal(
        self, data: bytes, pos: int, end: int, prefix_mask: int, unindexed: bool
    ) -> tuple[tuple[bytes, bytes], int]:
        name_index, pos = _decode_integer(data, pos, end, prefix_mask)
        if name_index:
            name = self._indexed(name_index)[0]
        else:
            name, pos = _decode_string(data, pos, end)
        if unindexed and pos < end and data[pos] & _HUFFMAN:
            value, pos = self._unindexed_huffman(data, pos, end)
        else:
            value, pos = _decode_string(data, pos, end)
        return (name, value), pos

    def _unindexed_huffman(self, data: bytes, pos: int, end: int) -> tuple[bytes, int]:
        """A Huffman string sent unindexed, from the cache when the same octets came before."""
        length, pos = _decode_integer(data, pos, end, 0x7F)
        stop = pos + length
        if stop > end:
            raise HPACKError("truncated string literal")
        if length < MIN_CACHED_LITERAL_LENGTH or length > MAX_CACHED_LITERAL_LENGTH:
            return huffman_decode(data, pos, stop), stop
        octets = data[pos:stop]
        value = self._huffman_cache.get(octets)
        if value is None:
            value = huffman_decode(data, pos, stop)
            if len(self._huffman_cache) >= MAX_CACHED_LITERALS:
                self._huffman_cache.clear()
            self._huffman_cache[octets] = value
        return value, stop

    def _add(self, name: bytes, value: bytes) -> None:
        entry_size = len(name) + len(value) + ENTRY_OVERHEAD
        if entry_size > self._max_size:
            # RFC 7541 4.4: an entry larger than the table empties it and is not added
            self._entries = []
            self._head = 0
            self._size = 0
            return
        self._evict_to(self._max_size - entry_size)
        self._entries.append((name, value))
        self._size += entry_size

    def _resize(self, size: int) -> None:
        self._max_size = size
        self._evict_to(size)

    def _evict_to(self, size: int) -> None:
        entries = self._entries
        head = self._head
        while self._size > size:
            name, value = entries[head]
            head += 1
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD
        if head > 16 and head * 2 > len(entries):
            del entries[:head]
            head = 0
        self._head = head


# The static table as the encoder's lookups hold it: indexes negated (see Encoder.__init__).
_STATIC_WHERE: Final[dict[bytes, dict[bytes, int]]] = {
    name: {value: -index for value, index in values.items()}
    for name, values in STATIC_BY_NAME_VALUE.items()
}
_STATIC_NAME_WHERE: Final[dict[bytes, int]] = {
    name: -index for name, index in STATIC_BY_NAME.items()
}


class Encoder:
    """Encodes the header blocks one side sends on one connection, in order."""

    def __init__(self, sensitive_names: frozenset[bytes] = SENSITIVE_NAMES) -> None:
        #: Names always sent as never-indexed literals: the credentials a caller injects under
        #: other names (an API key header, say) belong here too.
        self.sensitive_names = sensitive_names
        # The dynamic table as the peer's decoder will hold it: names and values oldest first
        # from _head. Entry k of the lists was the (_base + k)-th ever inserted: its HPACK index
        # is 61 + (number inserted) - (_base + k).
        self._names: list[bytes] = []
        self._values: list[bytes] = []
        self._head = 0
        self._base = 0
        self._size = 0
        self._max_size = DEFAULT_TABLE_SIZE
        # Where each (name, value) and each name is, both tables in one lookup: a static index
        # as a negative number, or the insertion number (>= 0) of the newest dynamic entry.
        # Shallow copies of the static table's: a static name's inner dict is shared until a
        # dynamic entry joins it (_add copies it then), so a new encoder costs two dict copies.
        self._by_name_value: dict[bytes, dict[bytes, int]] = _STATIC_WHERE.copy()
        self._by_name: dict[bytes, int] = _STATIC_NAME_WHERE.copy()
        # value -> its string literal (length prefix and octets), for unindexed values only
        self._literal_cache: dict[bytes, bytes] = {}
        # A size update owed at the start of the next block: the smallest size since the last
        # block, then the final one (RFC 7541 4.2), or -1 when none is owed.
        self._smallest_update = -1
        self._final_update = -1

    def set_max_table_size(self, size: int) -> None:
        """Apply the peer's SETTINGS_HEADER_TABLE_SIZE; the next block opens with the update."""
        size = min(size, ENCODER_TABLE_CAP)
        if self._smallest_update < 0 or size < self._smallest_update:
            self._smallest_update = size
        self._final_update = size
        self._max_size = size
        self._evict_to(size)

    def encode(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """One header block for ``headers`` (lowercase names), updating the dynamic table."""
        # The block's pieces, joined once: single bytes come from a table (nothing allocated),
        # strings go in whole. Compiled, list.append is a direct call, bytearray.append is not.
        out: list[bytes] = []
        if self._final_update >= 0:
            if self._smallest_update < self._final_update:
                _encode_integer(out, _SIZE_UPDATE, 0x1F, self._smallest_update)
            _encode_integer(out, _SIZE_UPDATE, 0x1F, self._final_update)
            self._smallest_update = -1
            self._final_update = -1
        for name, value in headers:
            # a static match is preferred (its index never changes), so the dynamic table never
            # holds a pair the static table has
            values = self._by_name_value.get(name)
            if values is not None:
                where = values.get(value, _NOWHERE)
                if where < 0:
                    if where != _NOWHERE:
                        out.append(_SINGLE_BYTES[_INDEXED | -where])
                        continue
                else:
                    _encode_integer(out, _INDEXED, 0x7F, self._index_of(where))
                    continue
            where = self._by_name.get(name, _NOWHERE)
            if where == _NOWHERE:
                name_index = 0
            elif where < 0:
                name_index = -where
            else:
                name_index = self._index_of(where)
            entry_size = len(name) + len(value) + ENTRY_OVERHEAD
            if name in self.sensitive_names:
                _encode_integer(out, _LITERAL_NEVER_INDEXED, 0x0F, name_index)
                indexed = False
            elif len(value) > MAX_INDEXED_VALUE_LENGTH or entry_size > self._max_size:
                _encode_integer(out, _LITERAL_NOT_INDEXED, 0x0F, name_index)
                indexed = False
            else:
                _encode_integer(out, _LITERAL_INCREMENTAL, 0x3F, name_index)
                indexed = True
            if not name_index:
                _encode_string(out, name)
            if indexed or len(value) < MIN_CACHED_LITERAL_LENGTH:
                _encode_string(out, value)
            else:
                out.append(self._unindexed_literal(value))
            if indexed:
                self._add(name, value, entry_size)
        return b"".join(out)

    def _unindexed_literal(self, value: bytes) -> bytes:
        """The string literal of a long unindexed value, from the cache when sent before."""
        literal = self._literal_cache.get(value)
        if literal is None:
            pieces: list[bytes] = []
            _encode_string(pieces, value)
            literal = b"".join(pieces)
            if len(value) <= MAX_CACHED_LITERAL_LENGTH:
                if len(self._literal_cache) >= MAX_CACHED_LITERALS:
                    self._literal_cache.clear()
                self._literal_cache[value] = literal
        return literal

    def _index_of(self, inserted: int) -> int:
        return STATIC_TABLE_LENGTH + self._base + len(self._names) - inserted

    def _add(self, name: bytes, value: bytes, entry_size: int) -> None:
        # the caller checked entry_size <= _max_size: the entry always fits after eviction
        self._evict_to(self._max_size - entry_size)
        inserted = self._base + len(self._names)
        self._names.append(name)
        self._values.append(value)
        self._size += entry_size
        values = self._by_name_value.get(name)
        if values is None:
            self._by_name_value[name] = {value: inserted}
        else:
            if values is _STATIC_WHERE.get(name):
                # shared with every encoder: this one's own copy from now on
                values = values.copy()
                self._by_name_value[name] = values
            values[value] = inserted
        where = self._by_name.get(name, _NOWHERE)
        if where >= 0 or where == _NOWHERE:  # a static name keeps its static index
            self._by_name[name] = inserted

    def _evict_to(self, size: int) -> None:
        names = self._names
        values = self._values
        head = self._head
        while self._size > size:
            name = names[head]
            value = values[head]
            inserted = self._base + head
            head += 1
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD
            # forget the entry only where it is still the newest of its name (and value)
            by_value = self._by_name_value.get(name)
            if by_value is not None and by_value.get(value, -1) == inserted:
                del by_value[value]
                if not by_value:
                    del self._by_name_value[name]
            if self._by_name.get(name, -1) == inserted:
                del self._by_name[name]
        if head > 16 and head * 2 > len(names):
            del names[:head]
            del values[:head]
            self._base += head
            head = 0
        self._head = head


def _encode_integer(out: list[bytes], first_bits: int, prefix_mask: int, value: int) -> None:
    """Append ``value`` with an N-bit prefix (RFC 7541 5.1), ``first_bits`` above the prefix."""
    if value < prefix_mask:
        out.append(_SINGLE_BYTES[first_bits | value])
        return
    out.append(_SINGLE_BYTES[first_bits | prefix_mask])
    value -= prefix_mask
    while value >= 0x80:
        out.append(_SINGLE_BYTES[(value & 0x7F) | 0x80])
        value >>= 7
    out.append(_SINGLE_BYTES[value])


def _encode_string(out: list[bytes], data: bytes) -> None:
    """Append a string literal, Huffman-encoded only when that is shorter."""
    huffman_length = huffman_encoded_length(data)
    if huffman_length < len(data):
        _encode_integer(out, _HUFFMAN, 0x7F, huffman_length)
        out.append(huffman_encode(data))
    else:
        _encode_integer(out, 0, 0x7F, len(data))
        out.append(data)
