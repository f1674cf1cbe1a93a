"""Cassettes without sockets: the file format, matching, and the record/replay wrapper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.api.traits import GRPC_STATUSES, AdapterTraits
from sidecar.cassettes.file import (
    CassetteError,
    append_interaction,
    body_field,
    body_of,
    load_interactions,
)
from sidecar.cassettes.handler import (
    CassetteFull,
    CassetteNoMatch,
    CassetteUnusable,
    cassette_handler,
)
from sidecar.cassettes.matching import NoMatch, Replayer, request_of
from sidecar.config.cassette import CassetteConfig, CassetteMatch
from sidecar.exchange import Exchange, Headers, Response
from sidecar.injected import Injected, mark_injected
from sidecar.outcomes import conditions_of_error
from sidecar.testing import cassette, make_exchange, responder

HTTP = AdapterTraits()


def interaction(method: str, path: str, answer: str, query: str = "", **req: Any) -> dict[str, Any]:
    request = {"method": method, "path": path, "query": query, "headers": [], **req}
    return {"request": request, "response": {"status": 200, "headers": [], "body": answer}}


def call(method: str, path: str, query: str = "", headers: Any = (), body: bytes = b"") -> Any:
    return request_of(method, path, query, headers, body)


def test_bodies_are_text_when_utf8_base64_otherwise_and_cut_at_the_bound() -> None:
    """A cassette keeps text readable, binary exact, and says when a body was cut."""
    assert body_field("héllo".encode(), 100) == {"body": "héllo"}
    binary = body_field(b"\x89PNG\xff", 100)
    assert "body_base64" in binary and body_of(binary) == b"\x89PNG\xff"
    cut = body_field(b"abcdef", 3)
    assert cut == {"body": "abc", "truncated": True}


def test_lines_append_one_per_interaction_and_read_back(tmp_path: Path) -> None:
    """Each recorded call is one JSON line, read back in order."""
    path = tmp_path / "c.jsonl"
    append_interaction(path, interaction("GET", "/a", "1"))
    size = append_interaction(path, interaction("GET", "/b", "2"))
    assert size == path.stat().st_size
    assert len(path.read_text().splitlines()) == 2
    assert [i["request"]["path"] for i in load_interactions(path)] == ["/a", "/b"]


def test_a_whole_json_document_is_read_too(tmp_path: Path) -> None:
    """A cassette written by hand as {"interactions": [...]} replays like recorded lines."""
    path = tmp_path / "c.json"
    doc = {"interactions": [interaction("GET", "/a", "1"), interaction("POST", "/b", "2")]}
    path.write_text(json.dumps(doc, indent=2))
    assert [i["request"]["method"] for i in load_interactions(path)] == ["GET", "POST"]


def test_a_broken_line_is_named(tmp_path: Path) -> None:
    """An unreadable cassette says which line and why, so it can be fixed."""
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(interaction("GET", "/a", "1")) + "\n{not json\n")
    with pytest.raises(CassetteError, match="line 2 is not JSON"):
        load_interactions(path)
    path.write_text(json.dumps({"request": {"path": "/a"}, "response": {"status": 200}}) + "\n")
    with pytest.raises(CassetteError, match="interaction 1 has no request.method"):
        load_interactions(path)


def test_repeated_requests_are_served_in_order_then_the_last_repeats() -> None:
    """Three recordings of one call answer calls one, two, three, and the third thereafter."""
    tape = [interaction("GET", "/n", str(i)) for i in range(3)]
    replayer = Replayer(tape, CassetteMatch(), "t")
    got = [replayer.answer(call("GET", "/n"))["response"]["body"] for _ in range(5)]
    assert got == ["0", "1", "2", "2", "2"]


def test_no_match_names_the_closest_request_and_the_rule_that_differs() -> None:
    """The 501's message points at the nearest recording (same method, most similar path)."""
    tape = [
        interaction("POST", "/users/1", "x"),
        interaction("GET", "/users/1", "y", query="v=a"),
        interaction("GET", "/orders", "z"),
    ]
    replayer = Replayer(tape, CassetteMatch(), "t.jsonl")
    with pytest.raises(NoMatch) as e:
        replayer.answer(call("GET", "/users/1", "v=b"))
    assert "closest: GET /users/1?v=a (interaction 2)" in str(e.value)
    assert "query parameter 'v' differs: recorded ['a'], got ['b']" in str(e.value)
    with pytest.raises(NoMatch, match="path differs"):
        replayer.answer(call("GET", "/users/2", "v=a"))


def test_query_order_is_ignored_and_rules_can_be_turned_off() -> None:
    """Parameters in another order match; with query: false any query does."""
    tape = [interaction("GET", "/s", "1", query="a=1&b=2")]
    assert Replayer(tape, CassetteMatch(), "t").answer(call("GET", "/s", "b=2&a=1"))
    loose = Replayer(tape, CassetteMatch(query=False), "t")
    assert loose.answer(call("GET", "/s", "zzz=9"))
    with pytest.raises(NoMatch):
        Replayer(tape, CassetteMatch(), "t").answer(call("GET", "/s", "a=1"))


def test_body_and_header_rules_and_redacted_values_match_anything() -> None:
    """JSON bodies compare parsed; a redacted recorded header only has to be present."""
    tape = [
        interaction(
            "POST",
            "/p",
            "ok",
            body='{"a": 1, "b": 2}',
            headers=[["authorization", "<redacted>"], ["x-v", "1"]],
        )
    ]
    rules = CassetteMatch(body=True, headers=["authorization", "x-v"])
    replayer = Replayer(tape, rules, "t")
    headers = [("authorization", "Bearer live"), ("x-v", "1")]
    assert replayer.answer(call("POST", "/p", headers=headers, body=b'{"b":2,"a":1}'))
    with pytest.raises(NoMatch, match="body differs"):
        replayer.answer(call("POST", "/p", headers=headers, body=b'{"a":1}'))
    with pytest.raises(NoMatch, match="header 'x-v' differs"):
        replayer.answer(call("POST", "/p", headers=[headers[0]], body=b'{"a":1,"b":2}'))


def settings(path: Path, mode: str = "record", **more: Any) -> CassetteConfig:
    return CassetteConfig.model_validate({"mode": mode, "path": str(path), **more})


async def test_recording_redacts_every_secret_the_call_carried(tmp_path: Path) -> None:
    """Injected credentials (headers and query), well-known secret headers and configured ones
    are written as <redacted>, in the request and the response."""
    path = tmp_path / "c.jsonl"
    upstream = responder(200, b"{}", {"set-cookie": "s=1", "x-trace": "t"})
    handler = cassette_handler("u", settings(path, redact_headers=["x-app-secret"]), upstream, HTTP)
    ex = make_exchange(
        "GET",
        "/v",
        {"authorization": "Bearer t", "x-app-secret": "s", "x-tenant": "k", "x-ok": "fine"},
        query="appid=live-key&x=1",
    )
    mark_injected(ex, Injected({"x-tenant": "request_headers secret"}, {"appid": "auth api_key"}))
    await handler(ex)
    text = path.read_text()
    for secret in ("Bearer t", '"s"', "live-key", '"k"', "s=1"):
        assert secret not in text
    [recorded] = cassette(path).interactions
    assert recorded.query == "appid=<redacted>&x=1"
    assert recorded.request_header("x-ok") == "fine"
    assert recorded.response_header("x-trace") == "t"
    assert recorded.response_header("set-cookie") == "<redacted>"


async def test_a_streamed_response_is_recorded_once_read_to_its_end(tmp_path: Path) -> None:
    """A streamed body passes through unchanged and is written when it ends."""
    path = tmp_path / "c.jsonl"

    async def chunks() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    async def upstream(ex: Exchange) -> Response:
        return Response(200, Headers(), chunks(), length=None)

    async def request_body() -> AsyncIterator[bytes]:
        yield b"12"
        yield b"34"

    ex = make_exchange("POST", "/s", body=request_body())

    async def drain_request(exchange: Exchange) -> Response:
        assert not isinstance(exchange.body, bytes)
        assert b"".join([c async for c in exchange.body]) == b"1234"
        return await upstream(exchange)

    handler = cassette_handler("u", settings(path, max_body=3), drain_request, HTTP)
    response = await handler(ex)
    assert not path.exists()  # not yet: the body has not been read
    assert not isinstance(response.body, bytes)
    assert b"".join([c async for c in response.body]) == b"abcd"
    [recorded] = cassette(path).interactions
    assert (recorded.raw["request"]["body"], recorded.raw["request"]["truncated"]) == ("123", True)
    assert recorded.raw["response"]["body"] == "abc"


async def test_a_full_cassette_refuses_before_the_upstream_is_called(tmp_path: Path) -> None:
    """Past max_size: 507 cassette_full, nothing forwarded, no retry and no breaker failure."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"x" * 1024)
    seen: list[Exchange] = []
    handler = cassette_handler("u", settings(path, max_size=1024), responder(seen=seen), HTTP)
    with pytest.raises(CassetteFull, match="max_size") as e:
        await handler(make_exchange())
    assert seen == []
    assert (e.value.status, e.value.code) == (507, "cassette_full")
    assert conditions_of_error(e.value) == ()


async def test_replay_answers_from_the_file_and_never_calls_the_adapter(tmp_path: Path) -> None:
    """Replay answers with the recorded status, headers and body; a miss is a 501."""
    path = tmp_path / "c.jsonl"
    recorded = interaction("GET", "/a", "hello")
    recorded["response"]["headers"] = [["content-type", "text/plain"], ["content-length", "99"]]
    append_interaction(path, recorded)
    seen: list[Exchange] = []
    handler = cassette_handler("u", settings(path, "replay"), responder(seen=seen), HTTP)
    response = await handler(make_exchange("GET", "/a"))
    assert (response.status, response.body) == (200, b"hello")
    assert response.headers.get("content-type") == "text/plain"
    assert response.headers.get("content-length") is None  # framed anew
    with pytest.raises(CassetteNoMatch) as e:
        await handler(make_exchange("GET", "/b"))
    assert (e.value.status, e.value.code) == (501, "cassette_no_match")
    assert conditions_of_error(e.value) == ()
    assert seen == []


def test_an_unusable_cassette_is_a_config_problem_at_its_key(tmp_path: Path) -> None:
    """A missing replay file, a missing folder or a gRPC upstream fail composing, with a key."""
    with pytest.raises(CassetteUnusable, match="cannot be read") as e:
        cassette_handler("u", settings(tmp_path / "nope.jsonl", "replay"), responder(), HTTP)
    assert e.value.key == "cassette.path"
    with pytest.raises(CassetteUnusable, match="does not exist"):
        cassette_handler("u", settings(tmp_path / "no" / "c.jsonl"), responder(), HTTP)
    grpc = AdapterTraits(statuses=GRPC_STATUSES)
    with pytest.raises(CassetteUnusable, match="not HTTP") as e:
        cassette_handler("u", settings(tmp_path / "c.jsonl"), responder(), grpc)
    assert e.value.key == "cassette"
