"""The calls as an app meets them when something is off: bounds, bad requests, a refused key, a
store that is down, the describe cache, and the config check with its key paths."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sidecar_vectors
from vectors_fake_pinecone import PINECONE_TEST_KEY, FakePinecone
from vectors_fake_weaviate import WEAVIATE_TEST_KEY, FakeWeaviate
from vectors_stores import KEY_ENV, RECORDS, StoreUnderTest, call, seed

SIDECAR = Path(sys.executable).with_name("sidecar")


@pytest.fixture
def pinecone_store(fake_pinecone: FakePinecone, store_keys: None) -> StoreUnderTest:
    return StoreUnderTest.make("pinecone", fake_pinecone, uuid.uuid4().hex[:8])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"vector": [1, 0, 0], "top_k": 11}, 400, "invalid_request"),
        ({"vector": [1, 0, 0], "top_k": 0}, 400, "invalid_request"),
        ({"vector": [1, 0, 0], "filter": {"genre": {"$ne": "x"}}}, 400, "invalid_filter"),
        ({"vector": [1, 0, 0], "filter": {"$and": []}}, 400, "invalid_filter"),
        ({"vector": [1, 0, 0], "filter": {"year": {"$gt": "2001"}}}, 400, "invalid_filter"),
        ({"vector": [1, 0, 0], "filter": {"g": {"$in": ["a", 1]}}}, 400, "invalid_filter"),
        ({"vector": [1, "x", 0]}, 400, "invalid_request"),
        ({"vector": [1, 0, 0], "topk": 3}, 400, "invalid_request"),
        ({"vector": [1, 0, 0], "namespace": "nope"}, 404, "unknown_namespace"),
    ],
)
async def test_a_bad_query_is_refused_before_the_store_is_asked(
    pinecone_store: StoreUnderTest,
    fake_pinecone: FakePinecone,
    sidecar_factory: Any,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    """Bounds, filters outside the language and unknown fields are the sidecar's 4xx answers."""
    async with sidecar_factory(pinecone_store.config(max_top_k=10), plugins=[sidecar_vectors]) as s:
        r = await call(s.http_port, "query", body)
    assert r.status_code == status, r.text
    assert r.headers["x-sidecar-error"] == code == r.json()["error"]["code"]
    assert all(seen.path != "/query" for seen in fake_pinecone.requests)


async def test_batch_body_and_routes_are_bounded(
    pinecone_store: StoreUnderTest, fake_pinecone: FakePinecone, sidecar_factory: Any
) -> None:
    """Too many records, a body too large, no JSON, an unknown call or method: refused."""
    config = pinecone_store.config(max_batch=2, max_request_bytes=1024)
    async with sidecar_factory(config, plugins=[sidecar_vectors]) as s:
        many = await call(s.http_port, "upsert", {"vectors": RECORDS[:3]})
        huge = await call(s.http_port, "upsert", {"vectors": [{"id": "x" * 2000, "vector": [1]}]})
        async with httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{s.http_port}/vec"
            not_json = await client.post(f"{base}/fetch", content=b"{nope")
            unknown = await client.post(f"{base}/search", json={})
            wrong_method = await client.get(f"{base}/query")
    assert (many.status_code, many.json()["error"]["code"]) == (400, "invalid_request")
    assert (huge.status_code, huge.headers["x-sidecar-error"]) == (413, "body_too_large")
    assert not_json.status_code == 400
    assert (unknown.status_code, unknown.headers["x-sidecar-error"]) == (404, "unknown_endpoint")
    assert wrong_method.status_code == 405
    assert fake_pinecone.requests == []


@pytest.mark.parametrize("backend", ["pinecone", "weaviate"])
async def test_the_key_is_injected_and_a_refused_key_is_never_echoed(
    backend: str,
    request: pytest.FixtureRequest,
    sidecar_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store gets the configured key in its own header; a wrong one is 502 store_auth,
    and neither key appears in the answer."""
    server: FakePinecone | FakeWeaviate = request.getfixturevalue(f"fake_{backend}")
    store = StoreUnderTest.make(backend, server, uuid.uuid4().hex[:8])
    monkeypatch.setenv(KEY_ENV[backend], "wrong-key-do-not-echo")
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        refused = await call(s.http_port, "query", {"vector": [1, 0, 0]})
    assert (refused.status_code, refused.headers["x-sidecar-error"]) == (502, "store_auth")
    assert "wrong-key" not in refused.text
    right = PINECONE_TEST_KEY if backend == "pinecone" else WEAVIATE_TEST_KEY
    monkeypatch.setenv(KEY_ENV[backend], right)
    server.reset()
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        ok = await call(
            s.http_port,
            "query",
            {"vector": [1, 0, 0]},
            headers={"authorization": "Bearer app-token", "api-key": "app-key"},
        )
    assert ok.status_code == 200, ok.text
    seen = server.requests[-1].headers
    if backend == "pinecone":
        assert seen["api-key"] == right and "authorization" not in seen
    else:
        assert seen["authorization"] == f"Bearer {right}" and "api-key" not in seen


async def test_a_store_that_is_down_is_upstream_connect(sidecar_factory: Any) -> None:
    """Nothing listening at the store's address: 502 upstream_connect, like any upstream."""
    config = {
        "upstreams": {
            "vec": {
                "adapter": "vectors",
                "options": {
                    "backend": "chroma",
                    "url": "http://127.0.0.1:9",
                    "namespaces": {"docs": "docs"},
                },
            }
        }
    }
    async with sidecar_factory(config, plugins=[sidecar_vectors]) as s:
        r = await call(s.http_port, "query", {"vector": [1, 0, 0]})
    assert (r.status_code, r.headers["x-sidecar-error"]) == (502, "upstream_connect")


async def test_the_store_is_described_once_for_concurrent_calls(
    pinecone_store: StoreUnderTest, fake_pinecone: FakePinecone, sidecar_factory: Any
) -> None:
    """Many first calls at once share one describe; later calls use the cached answer."""
    async with sidecar_factory(pinecone_store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        answers = await asyncio.gather(
            *(call(s.http_port, "query", {"vector": [1, 0, 0]}) for _ in range(8))
        )
    assert all(a.status_code == 200 for a in answers)
    stats = [r for r in fake_pinecone.requests if r.path == "/describe_index_stats"]
    assert len(stats) == 1


async def test_a_config_dimension_the_store_contradicts_is_reported(
    pinecone_store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """The config says 4, the index holds 3: every call says so (502 config_mismatch)."""
    async with sidecar_factory(pinecone_store.config(dimension=4), plugins=[sidecar_vectors]) as s:
        r = await call(s.http_port, "query", {"vector": [1, 0, 0, 0]})
    assert (r.status_code, r.headers["x-sidecar-error"]) == (502, "config_mismatch")
    assert "the store holds vectors of 3" in r.json()["error"]["message"]


BAD_CONFIG = """\
upstreams:
  vec:
    adapter: vectors
    options:
      backend: pinecone
      url: https://index.example.com
      api_key: pcsk_inline_secret_value
      namespaces: {docs: ""}
      max_top_k: 0
      metrik: cosine
  wv:
    adapter: vectors
    options:
      backend: weaviate
      url: http://127.0.0.1:8080
      namespaces: {docs: lowercase}
      default_namespace: nope
"""


def test_sidecar_check_reports_file_key_path_and_reason(tmp_path: Path) -> None:
    """`sidecar check` names the file, each bad option's key path and why; an inline key is
    refused without being repeated."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(BAD_CONFIG)
    done = subprocess.run(  # noqa: S603 - the sidecar's own CLI on a file of ours
        [str(SIDECAR), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    out = done.stderr + done.stdout
    assert f"{path}: upstreams.vec.options.api_key" in out
    assert f"{path}: upstreams.vec.options.max_top_k" in out
    assert f"{path}: upstreams.vec.options.metrik" in out
    assert "upstreams.wv.options" in out and "no Weaviate collection name" in out
    assert "default_namespace" in out
    assert "pcsk_inline_secret_value" not in out


async def test_an_object_weaviate_refuses_in_a_batch_fails_the_upsert(
    fake_weaviate: FakeWeaviate, store_keys: None, sidecar_factory: Any
) -> None:
    """Weaviate answers a batch 200 with each object's own errors: one refused is a 502."""
    store = StoreUnderTest.make("weaviate", fake_weaviate, uuid.uuid4().hex[:8])
    record = {"id": "a", "vector": [1, 0, 0], "metadata": {"year": "not a number"}}
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        r = await call(s.http_port, "upsert", {"vectors": [record]})
    assert (r.status_code, r.headers["x-sidecar-error"]) == (502, "store_error")
    assert "requires a int" in r.json()["error"]["message"]


async def test_a_slow_store_is_cut_at_the_upstreams_timeout(
    pinecone_store: StoreUnderTest, fake_pinecone: FakePinecone, sidecar_factory: Any
) -> None:
    """A store slower than the upstream's timeout: 504 upstream_timeout at the deadline."""
    config = pinecone_store.config()
    config["upstreams"]["vec"]["timeout"] = "300ms"
    async with sidecar_factory(config, plugins=[sidecar_vectors]) as s:
        await call(s.http_port, "describe")
        fake_pinecone.query_delay = 5.0
        started = asyncio.get_running_loop().time()
        r = await call(s.http_port, "query", {"vector": [1, 0, 0]})
        took = asyncio.get_running_loop().time() - started
    assert (r.status_code, r.headers["x-sidecar-error"]) == (504, "upstream_timeout")
    assert took < 2.0
