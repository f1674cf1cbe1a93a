"""CloudEvents 1.0 envelope: binary and structured HTTP modes, both ways, and what is filled."""

from __future__ import annotations

import base64
import json

import pytest
from sidecar_pubsub.envelope import (
    STRUCTURED,
    CloudEvent,
    EnvelopeError,
    complete,
    from_http,
    from_structured,
    to_binary,
    to_structured,
)


def test_binary_mode_reads_ce_headers_and_the_body_as_data() -> None:
    """`ce-*` headers are the attributes, the body is the data, content-type its type."""
    event = from_http(
        [("Content-Type", "application/json"), ("ce-type", "order.placed"), ("ce-id", "a1")],
        b'{"n":1}',
    )
    assert event.attributes == {
        "type": "order.placed",
        "id": "a1",
        "datacontenttype": "application/json",
    }
    assert event.data == b'{"n":1}'


def test_binary_header_values_are_percent_decoded_and_encoded_back() -> None:
    """A value with a space, a quote or non-ASCII survives a round trip through `ce-*` headers."""
    event = from_http([("ce-subject", "caf%C3%A9 %22x%22 100%25")], b"")
    assert event.attributes["subject"] == 'café "x" 100%'
    headers, _ = to_binary(event)
    assert ("ce-subject", "caf%C3%A9%20%22x%22%20100%25") in headers


def test_structured_mode_reads_the_whole_event_from_json() -> None:
    """A structured event's attributes and JSON data come from its body."""
    body = json.dumps(
        {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "data": {"k": [1, 2]}}
    ).encode()
    event = from_http([("content-type", f"{STRUCTURED}; charset=utf-8")], body)
    assert event.attributes == {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t"}
    assert json.loads(event.data or b"") == {"k": [1, 2]}


def test_structured_base64_data_is_decoded() -> None:
    """Binary data travels as `data_base64` and comes back as the same bytes."""
    raw = bytes(range(256))
    event = CloudEvent({"id": "1", "datacontenttype": "application/octet-stream"}, raw)
    doc = json.loads(to_structured(event))
    assert base64.b64decode(doc["data_base64"]) == raw
    assert from_structured(to_structured(event)).data == raw


def test_structured_text_data_stays_a_string() -> None:
    """Text data is a JSON string in structured mode, not base64."""
    event = CloudEvent({"id": "1", "datacontenttype": "text/plain"}, "héllo".encode())
    assert json.loads(to_structured(event))["data"] == "héllo"
    assert from_structured(to_structured(event)).data == "héllo".encode()


def test_binary_to_structured_to_binary_keeps_every_attribute() -> None:
    """An event published in binary mode is delivered in binary mode with the same attributes."""
    sent = from_http(
        [("content-type", "application/json"), ("ce-id", "x"), ("ce-myext", "v")], b'{"a":1}'
    )
    stored = from_structured(to_structured(sent))
    headers, body = to_binary(stored)
    assert dict(headers) == {"ce-id": "x", "ce-myext": "v", "content-type": "application/json"}
    assert json.loads(body) == {"a": 1}


def test_complete_fills_what_is_missing() -> None:
    """A plain body gets id, time, source, type, specversion, correlationid and traceparent."""
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = complete(from_http([], b"hi"), source="/shop", type_="sidecar.message", traceparent=tp)
    a = event.attributes
    assert a["specversion"] == "1.0" and a["source"] == "/shop" and a["type"] == "sidecar.message"
    assert len(a["id"]) == 36 and a["correlationid"] == a["id"]
    assert a["time"].endswith("Z") and a["traceparent"] == tp
    assert "causationid" not in a


def test_complete_keeps_what_the_app_set() -> None:
    """Attributes the app set, the correlation extension included, are never overwritten."""
    event = from_http(
        [
            ("ce-id", "mine"),
            ("ce-source", "/app"),
            ("ce-time", "2020-01-01T00:00:00Z"),
            ("ce-correlationid", "c-1"),
            ("ce-causationid", "e-0"),
            ("ce-traceparent", "00-11111111111111111111111111111111-2222222222222222-01"),
        ],
        b"",
    )
    a = complete(event, source="/cfg", type_="t", traceparent="00-other-01").attributes
    assert a["id"] == "mine" and a["source"] == "/app" and a["time"] == "2020-01-01T00:00:00Z"
    assert a["correlationid"] == "c-1" and a["causationid"] == "e-0"
    assert a["traceparent"].startswith("00-1111")


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ([("content-type", STRUCTURED)], b"[1]", "JSON object"),
        ([("content-type", STRUCTURED)], b"{", "JSON object"),
        ([("content-type", STRUCTURED)], b'{"data":1,"data_base64":"AA=="}', "not both"),
        ([("content-type", STRUCTURED)], b'{"data_base64":"!!"}', "base64"),
        ([("content-type", STRUCTURED)], b'{"x":{"y":1}}', "string, number or boolean"),
        ([("ce-Bad_Name", "v")], b"", "lower-case"),
        ([("ce-data", "v")], b"", "body"),
        ([("ce-subject", "%FF%FE")], b"", "percent-encoded UTF-8"),
    ],
)
def test_invalid_events_are_refused_with_the_reason(
    headers: list[tuple[str, str]], body: bytes, reason: str
) -> None:
    """What is no CloudEvent is refused with a reason the app can act on."""
    with pytest.raises(EnvelopeError, match=reason):
        from_http(headers, body)


def test_another_spec_version_is_refused() -> None:
    """An event of another CloudEvents version is not silently relabelled 1.0."""
    with pytest.raises(EnvelopeError, match="specversion"):
        complete(from_http([("ce-specversion", "0.3")], b""), source="/s", type_="t")
