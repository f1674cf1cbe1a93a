"""Review of the HPACK decoder reading an oversized header block to its end: whatever the block
holds past the limit (entries inserted into the dynamic table, Huffman strings, size updates,
references to entries the same block inserted), the decoder's table stays the peer's, so the
next blocks on the connection decode to what the client sent."""

from __future__ import annotations

import random

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple

from sidecar.http2.hpack_decoder import Decoder
from sidecar.http2.hpack_errors import OversizedHeaderListError

LIMIT = 600
Header = tuple[bytes, bytes]


def _random_list(rng: random.Random, pool: list[Header]) -> list[object]:
    """A header list mixing repeats (indexed, some from this same block), new literals,
    never-indexed ones and big values that push the list past the limit."""
    out: list[object] = []
    for _ in range(rng.randint(1, 14)):
        roll = rng.random()
        if roll < 0.35 and pool:
            out.append(rng.choice(pool))
        elif roll < 0.5:
            name = b"x-secret-%d" % rng.randint(0, 3)
            out.append(NeverIndexedHeaderTuple(name, b"s" * rng.randint(0, 40)))
        else:
            name = b"x-h%d" % rng.randint(0, 30)
            size = rng.choice((1, 10, 60, 200, 500))
            value = bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz0123456789-_", k=size))
            header = (name, value)
            pool.append(header)
            out.append(header)
    return out


def _size(headers: list[Header]) -> int:
    return sum(len(n) + len(v) + 32 for n, v in headers)


@pytest.mark.parametrize("seed", range(40))
def test_every_block_after_an_oversized_one_decodes_as_the_peer_sent_it(seed: int) -> None:
    """Blocks over the limit (Huffman or not, with table size updates at their start) raise
    with the list's whole size and the headers before the limit; every block decodes to the
    reference decoder's list, oversized ones included up to the limit."""
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    reference = hpack.Decoder()
    reference.max_header_list_size = 10**9
    ours = Decoder(max_header_list_size=LIMIT)
    pool: list[Header] = []
    oversized = 0
    for _ in range(30):
        if rng.random() < 0.15:
            encoder.header_table_size = rng.choice((0, 256, 1024, 4096))
        block = encoder.encode(_random_list(rng, pool), huffman=rng.random() < 0.6)
        expected = [(bytes(n), bytes(v)) for n, v in reference.decode(block, raw=True)]
        if _size(expected) <= LIMIT:
            assert ours.decode(block) == expected
            continue
        oversized += 1
        with pytest.raises(OversizedHeaderListError) as info:
            ours.decode(block)
        assert info.value.size == _size(expected)
        kept = info.value.headers
        assert kept == expected[: len(kept)] and _size(kept) <= LIMIT
        assert _size(expected[: len(kept) + 1]) > LIMIT
    assert oversized  # the seed exercised the oversized path


def test_a_block_referring_to_entries_it_inserted_past_the_limit() -> None:
    """An entry inserted past the limit and referred to later in the same block, then by the
    next block, is the client's entry both times."""
    encoder = hpack.Encoder()
    ours = Decoder(max_header_list_size=200)
    late = (b"x-late", b"L" * 20)
    big = [(b":path", b"/a.B/C"), (b"x-big", b"v" * 300), late, late]
    with pytest.raises(OversizedHeaderListError) as info:
        ours.decode(encoder.encode(big))
    assert info.value.headers == [(b":path", b"/a.B/C")]
    block = encoder.encode([late, (b":path", b"/a.B/C")])
    assert len(block) <= 3  # both indexed
    assert ours.decode(block) == [late, (b":path", b"/a.B/C")]
