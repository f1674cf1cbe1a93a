"""The ``echo`` adapter: answers every call itself with what an upstream would have received.

It makes the embedded default work with nothing outside (``curl 127.0.0.1:15001/echo/hello``)
and shows what the sidecar did to the request: header hygiene, ``X-Forwarded-For``, injected
headers, the rewritten path. Not a load generator target: it buffers the request body (bounded).
"""

from __future__ import annotations

import json

from ..chain import Handler
from ..config.models import UpstreamConfig
from ..exchange import Exchange, Headers, Response, read_body
from ..hookspecs import hookimpl
from ..registry import Adapter, AdapterRegistry

#: Request bodies are echoed up to this size (413 past it).
MAX_ECHO_BODY = 1024 * 1024


class EchoAdapter(Adapter):
    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        async def echo(ex: Exchange) -> Response:
            body = await read_body(ex, MAX_ECHO_BODY)
            forwarded = [(k, v) for k, v in ex.headers if k != "x-forwarded-for"]
            ip = ex.client.rpartition(":")[0]
            xff = ex.headers.get("x-forwarded-for")
            if ip:
                forwarded.append(("x-forwarded-for", f"{xff}, {ip}" if xff else ip))
            doc = {
                "upstream": name,
                "method": ex.method,
                "path": ex.path,
                "query": ex.query,
                "headers": dict(forwarded),
                "body": body.decode("utf-8", "replace"),
            }
            payload = (json.dumps(doc, indent=2) + "\n").encode()
            return Response(
                200,
                Headers.wrap([("content-type", "application/json"), ("x-sidecar-upstream", name)]),
                payload,
            )

        return echo


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("echo", EchoAdapter)
