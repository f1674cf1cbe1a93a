"""What the plugin gets from the sidecar's core through the plugin API, end to end: the
upstream's ``tls`` section applies to the GraphQL server (the sidecar's own HTTP client), and
the access-log line names the operation. A real HTTPS server, a real sidecar."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sidecar_graphql
from graphql_server import ServedInThread
from private_ca import ServerPki, issue
from sidecars import endpoint, sidecar_config

from sidecar.testing import running_sidecar


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ServerPki:
    return issue(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def https_server(pki: ServerPki) -> Iterator[ServedInThread]:
    with ServedInThread(str(pki.cert), str(pki.key)) as served:
        yield served


async def hello(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(endpoint(port), json={"query": "query Hi { hello }"})


async def test_the_upstreams_tls_section_applies_to_the_graphql_server(
    https_server: ServedInThread, pki: ServerPki
) -> None:
    """An HTTPS server signed by a private CA is called when ``tls.ca`` names that CA, and
    refused (502 upstream_connect, never sent) when it does not."""
    trusted = sidecar_config(https_server.url, upstream={"tls": {"ca": str(pki.ca)}})
    async with running_sidecar(trusted, plugins=[sidecar_graphql]) as s:
        r = await hello(s.http_port)
    assert r.status_code == 200 and r.json() == {"data": {"hello": "hello world"}}
    async with running_sidecar(sidecar_config(https_server.url), plugins=[sidecar_graphql]) as s:
        r = await hello(s.http_port)
    assert r.status_code == 502 and r.headers["x-sidecar-error"] == "upstream_connect"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append(getattr(record, "fields", {}))


async def test_the_access_log_line_names_the_operation(
    graphql_server: ServedInThread, tmp_path: Path
) -> None:
    """A log reader sees which operation a call was (``graphql_type``, ``graphql_operation``)
    and why the sidecar refused one (``graphql_refused``)."""
    logger = logging.getLogger("sidecar.access")
    lines, old_level = Lines(), logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    config = sidecar_config(graphql_server.url, limits={"max_depth": 2})
    try:
        async with running_sidecar(config, plugins=[sidecar_graphql]) as s:
            assert (await hello(s.http_port)).status_code == 200
            async with httpx.AsyncClient(timeout=10) as http:
                deep = {"query": "{ user(id: 1) { friend { name } } }"}
                assert (await http.post(endpoint(s.http_port), json=deep)).status_code == 400
    finally:
        logger.removeHandler(lines)
        logger.setLevel(old_level)
    ok, refused = [f for f in lines.fields if f.get("path") == "/graphql"]
    assert (ok["graphql_type"], ok["graphql_operation"]) == ("query", "Hi")
    assert refused["graphql_refused"] == "DEPTH_LIMIT_EXCEEDED" and "graphql_type" not in refused
