"""The HPACK decoder (RFC 7541): one per connection, reading the header blocks the peer sends.

What it is: :class:`Decoder`, its dynamic table and the bounds a hostile peer meets: table size
updates only at the start of a block and never above our setting, indexes inside the tables, the
decoded list's size (RFC 9113 6.5.2) checked field by field, every step linear in the block.
What it is not: HTTP/2 semantics (:mod:`header_rules`), nor framing: a block arrives here
already joined from HEADERS and CONTINUATION frames.

After any :class:`HPACKError` the decoder's table no longer matches the peer's: the connection
must end (COMPRESSION_ERROR), it cannot decode another block.
"""

from __future__ import annotations

__all__ = ["Decoder"]

from sidecar.http2.hpack_errors import HPACKError, OversizedHeaderListError
from sidecar.http2.hpack_static import STATIC_TABLE, STATIC_TABLE_LENGTH
from sidecar.http2.hpack_wire import (
    DEFAULT_TABLE_SIZE,
    ENTRY_OVERHEAD,
    HUFFMAN,
    INDEXED,
    LITERAL_INCREMENTAL,
    MAX_CACHED_LITERAL_LENGTH,
    MAX_CACHED_LITERALS,
    MIN_CACHED_LITERAL_LENGTH,
    SIZE_UPDATE,
    decode_integer,
    decode_string,
)
from sidecar.http2.huffman import huffman_decode


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
        """The header list of one complete header block; HPACKError if it is malformed, and
        OversizedHeaderListError once the whole block was read (the table kept in step with
        the peer's) if it decodes past ``max_header_list_size``."""
        headers: list[tuple[bytes, bytes]] = []
        kept: list[tuple[bytes, bytes]] | None = None  # the headers within the limit, once past it
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
            if first & INDEXED:
                index, pos = decode_integer(data, pos, end, 0x7F)
                header = self._indexed(index)
            elif first & LITERAL_INCREMENTAL:
                header, pos = self._literal(data, pos, end, 0x3F, False)
                self._add(header[0], header[1])
            elif first & SIZE_UPDATE:
                if not updates_allowed:
                    raise HPACKError("dynamic table size update after the start of the block")
                size, pos = decode_integer(data, pos, end, 0x1F)
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
                # read on to the block's end, keeping nothing more: the table must stay the
                # peer's (the block's size is bounded, so is this work)
                if kept is None:
                    kept = headers
                continue
            headers.append(header)
        if update_owed:
            raise HPACKError("missing dynamic table size update")
        if kept is not None:
            raise OversizedHeaderListError("header list larger than allowed", list_size, kept)
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
        name_index, pos = decode_integer(data, pos, end, prefix_mask)
        if name_index:
            name = self._indexed(name_index)[0]
        else:
            name, pos = decode_string(data, pos, end)
        if unindexed and pos < end and data[pos] & HUFFMAN:
            value, pos = self._unindexed_huffman(data, pos, end)
        else:
            value, pos = decode_string(data, pos, end)
        return (name, value), pos

    def _unindexed_huffman(self, data: bytes, pos: int, end: int) -> tuple[bytes, int]:
        """A Huffman string sent unindexed, from the cache when the same octets came before."""
        length, pos = decode_integer(data, pos, end, 0x7F)
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
