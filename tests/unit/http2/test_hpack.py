"""HPACK (sidecar.http2.hpack): the RFC 7541 examples, interoperation with the ``hpack`` library
both ways, every malformed block refused, and what the encoder chooses to index."""

from __future__ import annotations

import random

import hpack
import pytest

from sidecar.http2.hpack import (
    SENSITIVE_NAMES,
    Decoder,
    Encoder,
    HPACKError,
    OversizedHeaderListError,
)
from sidecar.http2.huffman import huffman_decode, huffman_encode

Headers = list[tuple[bytes, bytes]]

REQUEST_1: Headers = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":path", b"/"),
    (b":authority", b"www.example.com"),
]
REQUEST_2: Headers = [*REQUEST_1, (b"cache-control", b"no-cache")]
REQUEST_3: Headers = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/index.html"),
    (b":authority", b"www.example.com"),
    (b"custom-key", b"custom-value"),
]
RESPONSE_1: Headers = [
    (b":status", b"302"),
    (b"cache-control", b"private"),
    (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
    (b"location", b"https://www.example.com"),
]
RESPONSE_2: Headers = [(b":status", b"307"), *RESPONSE_1[1:]]
RESPONSE_3: Headers = [
    (b":status", b"200"),
    (b"cache-control", b"private"),
    (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"),
    (b"location", b"https://www.example.com"),
    (b"content-encoding", b"gzip"),
    (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
]

# RFC 7541 Appendix C, each sequence decoded in order on one decoder.
C3_REQUESTS = [
    ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQUEST_1),
    ("8286 84be 5808 6e6f 2d63 6163 6865", REQUEST_2),
    ("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", REQUEST_3),
]
C4_REQUESTS = [
    ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQUEST_1),
    ("8286 84be 5886 a8eb 1064 9cbf", REQUEST_2),
    ("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQUEST_3),
]
C5_RESPONSES = [
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a"
    " 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "4803 3330 37c1 c0bf",
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04"
    " 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49"
    " 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
]
C6_RESPONSES = [
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e"
    " 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    "4883 640e ffc1 c0bf",
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7"
    " 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed"
    " 4ee5 b106 3d50 07",
]
RESPONSES = [RESPONSE_1, RESPONSE_2, RESPONSE_3]


def block(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.replace(" ", ""))


@pytest.mark.parametrize(
    ("hex_text", "expected"),
    [
        (
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            [(b"custom-key", b"custom-header")],
        ),
        ("040c 2f73 616d 706c 652f 7061 7468", [(b":path", b"/sample/path")]),
        ("1008 7061 7373 776f 7264 0673 6563 7265 74", [(b"password", b"secret")]),
        ("82", [(b":method", b"GET")]),
    ],
    ids=["C.2.1", "C.2.2", "C.2.3", "C.2.4"],
)
def test_rfc7541_c2_literal_and_indexed_representations_decode(
    hex_text: str, expected: Headers
) -> None:
    """Each representation of RFC 7541 C.2 decodes to its field."""
    assert Decoder().decode(block(hex_text)) == expected


@pytest.mark.parametrize("sequence", [C3_REQUESTS, C4_REQUESTS], ids=["C.3", "C.4"])
def test_rfc7541_request_sequences_decode_with_the_dynamic_table(
    sequence: list[tuple[str, Headers]],
) -> None:
    """RFC 7541 C.3 (plain) and C.4 (Huffman) requests decode in order, using the dynamic table."""
    decoder = Decoder()
    for hex_text, expected in sequence:
        assert decoder.decode(block(hex_text)) == expected
    # the newest entry (62) is the last one the peer asked to index
    assert decoder.decode(b"\xbe") == [(b"custom-key", b"custom-value")]


@pytest.mark.parametrize("sequence", [C5_RESPONSES, C6_RESPONSES], ids=["C.5", "C.6"])
def test_rfc7541_response_sequences_decode_with_eviction(sequence: list[str]) -> None:
    """RFC 7541 C.5 (plain) and C.6 (Huffman) responses decode with a 256-byte evicting table."""
    decoder = Decoder(max_table_size=256)
    for hex_text, expected in zip(sequence, RESPONSES, strict=True):
        assert decoder.decode(block(hex_text)) == expected
    # after C.x.3 the table holds three entries: index 65 is past it (:status 302 was evicted)
    assert decoder.decode(b"\xbe\xbf\xc0") == [RESPONSE_3[5], RESPONSE_3[4], RESPONSE_3[2]]
    with pytest.raises(HPACKError):
        decoder.decode(b"\xc1")


def test_encoder_writes_the_rfc7541_c4_blocks() -> None:
    """The encoder indexes and Huffman-encodes as RFC 7541 C.4 does: the same bytes."""
    encoder = Encoder()
    for hex_text, headers in C4_REQUESTS:
        assert encoder.encode(headers) == block(hex_text)


def random_headers(rng: random.Random) -> Headers:
    """A header set mixing static matches, repeats, sensitive fields, new names and big values."""
    pool: Headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pkg.Service/Method" + str(rng.randrange(8)).encode()),
        (b":authority", b"upstream:50051"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", str(rng.randrange(1, 1000)).encode() + b"m"),
        (b"authorization", b"Bearer " + bytes(rng.randrange(33, 127) for _ in range(20))),
        (b"cookie", b"session=" + str(rng.randrange(4)).encode()),
        (
            b"x-custom-" + str(rng.randrange(30)).encode(),
            bytes(rng.randrange(256) for _ in range(rng.randrange(40))),
        ),
        (b"x-big", b"v" * rng.randrange(200, 400)),
        (b"grpc-status", b"0"),
        (b":status", b"200"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"x-empty", b""),
    ]
    return rng.sample(pool, rng.randrange(1, len(pool)))


@pytest.mark.parametrize("seed", range(6))
def test_blocks_we_encode_decode_identically_with_the_hpack_library(seed: int) -> None:
    """Our blocks, in a row with table size changes, decode with ``hpack`` to the same lists."""
    rng = random.Random(seed)
    encoder = Encoder()
    theirs = hpack.Decoder()
    for round_number in range(150):
        if round_number % 40 == 39:
            encoder.set_max_table_size(rng.choice([0, 64, 256, 4096, 65536]))
        headers = random_headers(rng)
        assert list(theirs.decode(encoder.encode(headers), raw=True)) == headers


@pytest.mark.parametrize("seed", range(6))
def test_blocks_the_hpack_library_encodes_decode_with_ours(seed: int) -> None:
    """``hpack``'s blocks, in a row with table size changes, Huffman or not, decode with ours."""
    rng = random.Random(seed)
    theirs = hpack.Encoder()
    decoder = Decoder()
    for round_number in range(150):
        if round_number % 40 == 39:
            theirs.header_table_size = rng.choice([0, 64, 256, 4096])
        headers = random_headers(rng)
        assert decoder.decode(theirs.encode(headers, huffman=rng.random() < 0.7)) == headers


def test_our_encoder_and_decoder_agree_across_table_size_changes() -> None:
    """A shrink then grow between blocks signals both sizes, and our own pair stays in step."""
    encoder = Encoder()
    decoder = Decoder()
    rng = random.Random(7)
    for _ in range(30):
        headers = random_headers(rng)
        assert decoder.decode(encoder.encode(headers)) == headers
    encoder.set_max_table_size(0)
    encoder.set_max_table_size(4096)
    first = encoder.encode([(b"x-a", b"1")])
    assert first[:4] == b"\x20\x3f\xe1\x1f"  # size 0, then 4096 (RFC 7541 4.2)
    assert decoder.decode(first) == [(b"x-a", b"1")]
    for _ in range(30):
        headers = random_headers(rng)
        assert decoder.decode(encoder.encode(headers)) == headers


def test_repeated_headers_are_sent_as_one_byte_indexes() -> None:
    """A gRPC call's headers repeated on the next call cost one byte each (static or dynamic)."""
    headers: Headers = [
        (b":method", b"POST"),
        (b":path", b"/pkg.Service/Method"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"x-tenant", b"blue"),
    ]
    encoder = Encoder()
    encoder.encode(headers)
    second = encoder.encode(headers)
    assert len(second) == len(headers)
    assert all(byte & 0x80 for byte in second)


@pytest.mark.parametrize(
    "name", [b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"]
)
def test_credentials_are_encoded_never_indexed(name: bytes) -> None:
    """Credentials are never-indexed literals (0001 bits): they never sit in a peer's table."""
    encoder = Encoder()
    for _ in range(2):
        encoded = encoder.encode([(name, b"secret-value")])
        assert encoded[0] & 0xF0 == 0x10
        decoded = list(hpack.Decoder().decode(encoded, raw=True))
        assert decoded == [(name, b"secret-value")]
        assert isinstance(decoded[0], hpack.NeverIndexedHeaderTuple)


def test_injected_credential_names_can_be_made_sensitive_too() -> None:
    """An encoder given more sensitive names never indexes those either (default: the four)."""
    encoder = Encoder(sensitive_names=SENSITIVE_NAMES | {b"x-api-key"})
    for _ in range(2):
        assert encoder.encode([(b"x-api-key", b"k-123")])[0] & 0xF0 == 0x10
    assert Encoder().encode([(b"x-api-key", b"k-123")])[0] & 0xC0 == 0x40


def test_big_values_are_not_indexed() -> None:
    """A value over 256 bytes is sent without indexing (0000 bits): it does not flush the table."""
    encoder = Encoder()
    encoder.encode([(b"x-tenant", b"blue")])
    encoded = encoder.encode([(b"x-big", b"v" * 300)])
    assert encoded[0] & 0xF0 == 0x00
    # the earlier entry is still there: one indexed byte
    assert encoder.encode([(b"x-tenant", b"blue")]) == b"\xbe"


def test_size_update_opens_the_block_after_set_max_table_size() -> None:
    """The peer's smaller SETTINGS_HEADER_TABLE_SIZE is signalled once, opening the next block."""
    encoder = Encoder()
    encoder.set_max_table_size(100)
    assert encoder.encode([(b":method", b"GET")]) == b"\x3f\x45\x82"
    assert encoder.encode([(b":method", b"GET")]) == b"\x82"


def test_a_peer_table_of_zero_means_nothing_is_indexed() -> None:
    """With a zero-size table every literal goes unindexed, and the peer's decoder stays in step."""
    encoder = Encoder()
    encoder.set_max_table_size(0)
    theirs = hpack.Decoder()
    for _ in range(3):
        encoded = encoder.encode([(b"x-tenant", b"blue")])
        assert list(theirs.decode(encoded, raw=True)) == [(b"x-tenant", b"blue")]
    assert encoded[0] & 0xF0 == 0x00


@pytest.mark.parametrize(
    ("hex_text", "reason"),
    [
        ("ff", "truncated integer"),  # an integer promising continuation bytes that never come
        ("ff 80 80", "truncated integer"),
        ("ff ff ff ff ff 7f", "too large"),  # an integer past 2**31
        ("ff 80 80 80 80 80 80 80 00", "too many continuation"),  # too many continuation bytes
        ("80", "index 0"),  # index 0
        ("be", "index past"),  # index 62 in an empty dynamic table
        ("ff 80 01", "index past"),  # an index far past both tables
        ("7e 00", "index past"),  # a literal whose name index is past the tables
        ("82 20", "after the start"),  # a size update after a field
        ("3f e2 1f", "above the allowed"),  # a size update to 4097, above the 4096 we allow
        ("04 81 18", "padding"),  # Huffman 'a' padded with zeros
        ("04 82 1f ff", "padding"),  # Huffman 'a' then 11 bits of padding
        ("04 84 ff ff ff ff", "EOS"),  # the EOS symbol inside a string
        ("04 05 61 62", "truncated string"),  # a string shorter than its length
        ("04 85 61", "truncated string"),  # the same, Huffman-coded
        ("04 c0" + " ff" * 64, "EOS"),  # a long unindexed Huffman string holding EOS
        ("04 c0" + " 00" * 63 + " 18", "padding"),  # ... with zero padding
        ("04", "truncated header block"),  # a literal with no value
        ("40 0a 63 75", "truncated string"),  # a literal name cut short
    ],
)
def test_malformed_blocks_raise_hpack_error(hex_text: str, reason: str) -> None:
    """Every malformed block raises HPACKError (the connection answers COMPRESSION_ERROR)."""
    with pytest.raises(HPACKError, match=reason):
        Decoder().decode(block(hex_text))


def test_a_lowered_table_size_must_be_acknowledged_by_a_size_update() -> None:
    """Once we allow a smaller table, the peer's next block must open with a size update to it."""
    decoder = Decoder()
    decoder.decode(block("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    decoder.max_allowed_table_size = 100
    with pytest.raises(HPACKError):
        decoder.decode(b"\x82")
    acknowledged = Decoder()
    acknowledged.max_allowed_table_size = 0
    assert acknowledged.decode(b"\x20\x82") == [(b":method", b"GET")]


def test_an_oversized_header_list_raises_its_own_error() -> None:
    """A list past max_header_list_size (name + value + 32 each) raises OversizedHeaderListError."""
    # :method GET counts 7 + 3 + 32 = 42: two fit in 84, three do not
    assert Decoder(max_header_list_size=84).decode(b"\x82\x82") == [(b":method", b"GET")] * 2
    with pytest.raises(OversizedHeaderListError):
        Decoder(max_header_list_size=84).decode(b"\x82\x82\x82")
    # a block of a million one-byte references stops at the limit instead of building the list
    with pytest.raises(OversizedHeaderListError):
        Decoder().decode(b"\x82" * 1_000_000)


def test_an_entry_larger_than_the_table_empties_it() -> None:
    """RFC 7541 4.4: an entry bigger than the whole table evicts everything and is not added."""
    decoder = Decoder(max_table_size=100)
    decoder.decode(b"\x40\x01a\x01b")  # 34 bytes: fits
    assert decoder.decode(b"\xbe") == [(b"a", b"b")]
    decoder.decode(b"\x40\x01a\x7f\x00" + b"v" * 127)  # 160 bytes: too big
    with pytest.raises(HPACKError):
        decoder.decode(b"\xbe")


def test_huffman_round_trips_every_byte() -> None:
    """Any byte string Huffman-encodes and decodes back to itself."""
    rng = random.Random(3)
    for data in [b"", bytes(range(256)), bytes(rng.randrange(256) for _ in range(5000))]:
        encoded = huffman_encode(data)
        assert huffman_decode(encoded, 0, len(encoded)) == data


def test_a_new_value_for_a_known_name_reuses_the_names_index() -> None:
    """A name already in the dynamic table is sent as its index, not spelled again."""
    encoder = Encoder()
    encoder.encode([(b"x-tenant", b"blue")])
    assert encoder.encode([(b"x-tenant", b"green")])[0] == 0x40 | 62


def test_garbage_and_corrupted_blocks_raise_only_hpack_error() -> None:
    """Random and corrupted blocks either decode or raise HPACKError: never another exception."""
    rng = random.Random(11)
    theirs = hpack.Encoder()
    valid = [theirs.encode(random_headers(rng), huffman=rng.random() < 0.5) for _ in range(50)]
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        else:
            corrupted = bytearray(rng.choice(valid))
            position = rng.randrange(len(corrupted))
            if rng.random() < 0.5:
                corrupted[position] = rng.randrange(256)
            else:
                del corrupted[position:]
            data = bytes(corrupted)
        decoder = Decoder(
            max_header_list_size=rng.choice([100, 65536]), max_table_size=rng.choice([0, 4096])
        )
        try:
            decoder.decode(data)
            decoder.decode(data)
        except HPACKError:
            pass


def test_encoders_of_different_connections_share_no_table() -> None:
    """What one connection's encoder indexed (even under a static name) is unknown to another's."""
    first = Encoder()
    second = Encoder()
    assert first.encode([(b":path", b"/pkg.Service/Method")])[0] == 0x40 | 4  # :path is static 4
    assert first.encode([(b":path", b"/pkg.Service/Method")]) == b"\xbe"
    assert second.encode([(b":path", b"/pkg.Service/Method")])[0] == 0x40 | 4
    first.set_max_table_size(0)  # evicts first's entry: second's must stay
    assert second.encode([(b":path", b"/pkg.Service/Method")]) == b"\xbe"
    assert Encoder().encode([(b":path", b"/pkg.Service/Method")])[0] == 0x40 | 4


def test_a_long_credential_sent_on_every_call_encodes_the_same_each_time() -> None:
    """A long token repeated per call (cached after the first) and many distinct ones all decode."""
    encoder = Encoder()
    theirs = hpack.Decoder()
    token = (b"authorization", b"Bearer " + b"eyJhbGciOiJSUzI1NiJ9." * 50)
    first = encoder.encode([token])
    assert first[0] & 0xF0 == 0x10
    assert encoder.encode([token]) == first
    assert list(theirs.decode(first, raw=True)) == [token]
    for number in range(30):
        headers = [
            (b"authorization", b"Bearer " + str(number).encode() * 40),
            (b"x-big", b"v%d" % number * 200),
            token,
        ]
        assert list(theirs.decode(encoder.encode(headers), raw=True)) == headers


def test_long_unindexed_huffman_values_decode_right_each_time() -> None:
    """Long Huffman values sent unindexed decode right on each call, the same or changed."""
    ours = Decoder()
    theirs = hpack.Encoder()
    tokens = [
        b"Bearer " + letter * 100 for letter in (b"a", b"b", b"a", b"c", b"d", b"e", b"f", b"a")
    ]
    for token in tokens:
        block = theirs.encode(
            [hpack.NeverIndexedHeaderTuple(b"authorization", token)], huffman=True
        )
        assert block[0] & 0xF0 == 0x10 and block[2] & 0x80  # never indexed, Huffman value
        assert ours.decode(block) == [(b"authorization", token)]
