"""The HPACK encoder (RFC 7541): one per connection, writing the header blocks we send.

What it is: :class:`Encoder`, the dynamic table as the peer's decoder will hold it, and the
choice of each field's representation: an index when the static or dynamic table holds the
field, else a literal that is indexed, except credentials (never indexed) and big values (not
indexed, so one does not flush the table). Strings are Huffman-coded only when that is shorter.
What it is not: HTTP/2 semantics: the caller gives lowercase names and valid values.
"""

from __future__ import annotations

__all__ = ["ENCODER_TABLE_CAP", "MAX_INDEXED_VALUE_LENGTH", "SENSITIVE_NAMES", "Encoder"]

from typing import Final

from sidecar.http2.hpack_static import STATIC_BY_NAME, STATIC_BY_NAME_VALUE, STATIC_TABLE_LENGTH
from sidecar.http2.hpack_wire import (
    DEFAULT_TABLE_SIZE,
    ENTRY_OVERHEAD,
    INDEXED,
    LITERAL_INCREMENTAL,
    LITERAL_NEVER_INDEXED,
    LITERAL_NOT_INDEXED,
    MAX_CACHED_LITERAL_LENGTH,
    MAX_CACHED_LITERALS,
    MIN_CACHED_LITERAL_LENGTH,
    SINGLE_BYTES,
    SIZE_UPDATE,
    encode_integer,
    encode_string,
)

#: The encoder's own ceiling on its table, whatever larger size the peer allows: a bigger table
#: buys little on gRPC's few repeated headers and costs memory per connection.
ENCODER_TABLE_CAP: Final = 4096
#: Values longer than this are sent without indexing, so one big value does not flush the table.
MAX_INDEXED_VALUE_LENGTH: Final = 256
#: Fields a peer must never put in its table (RFC 7541 7.1.3): credentials stay out of
#: compression state, where a compression oracle could probe them.
SENSITIVE_NAMES: Final[frozenset[bytes]] = frozenset(
    (b"authorization", b"proxy-authorization", b"cookie", b"set-cookie")
)
# Below every static index (stored negated) and every insertion number: "in neither table".
_NOWHERE: Final = -1000

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
                encode_integer(out, SIZE_UPDATE, 0x1F, self._smallest_update)
            encode_integer(out, SIZE_UPDATE, 0x1F, self._final_update)
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
                        out.append(SINGLE_BYTES[INDEXED | -where])
                        continue
                else:
                    encode_integer(out, INDEXED, 0x7F, self._index_of(where))
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
                encode_integer(out, LITERAL_NEVER_INDEXED, 0x0F, name_index)
                indexed = False
            elif len(value) > MAX_INDEXED_VALUE_LENGTH or entry_size > self._max_size:
                encode_integer(out, LITERAL_NOT_INDEXED, 0x0F, name_index)
                indexed = False
            else:
                encode_integer(out, LITERAL_INCREMENTAL, 0x3F, name_index)
                indexed = True
            if not name_index:
                encode_string(out, name)
            if indexed or len(value) < MIN_CACHED_LITERAL_LENGTH:
                encode_string(out, value)
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
            encode_string(pieces, value)
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
