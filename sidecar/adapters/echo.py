"""The ``echo`` adapter: answers every call itself with what an upstream would have received.

It makes the embedded default work with nothing outside (``curl 127.0.0.1:15001/echo/hello``)
and shows what the sidecar did to the request: header hygiene, ``X-Forwarded-For``, injected
headers, the rewritten path. Not a load generator target: it buffers the request body (bounded).

It answers the app, which must never see the credentials the sidecar holds for it: a header or
query parameter that the ``auth`` filter (API key, bearer, Basic, OAuth2 token, HMAC signature)
or a secret ``request_headers`` value put on the call is shown by name with its value replaced,
``"authorization": "<redacted: auth bearer>"``. It declares that it shows requests
(``AdapterTraits(shows_requests=True)``), so those filters say what they injected
(:data:`~sidecar.injected.INJECTED_SECRETS`) on its routes; nothing here guesses from header
names, so a value written in the file (``x-sidecar-demo``) and what the app sent itself stay
visible.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from ..api import Adapter, AdapterRegistry, AdapterTraits, hookimpl
from ..chain import Handler
from ..config.models import UpstreamConfig
from ..exchange import Exchange, Headers, Response, read_body
from ..injected import INJECTED_SECRETS, Injected

#: Request bodies are echoed up to this size (413 past it).
MAX_ECHO_BODY = 1024 * 1024


class EchoAdapter(Adapter):
    #: it shows the app the request: the filters mark what they injected, to be redacted here
    traits = AdapterTraits(shows_requests=True)

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        async def echo(ex: Exchange) -> Response:
            body = await read_body(ex, MAX_ECHO_BODY)
            forwarded = [(k, v) for k, v in ex.headers if k != "x-forwarded-for"]
            ip = ex.client.rpartition(":")[0]
            xff = ex.headers.get("x-forwarded-for")
            if ip:
                forwarded.append(("x-forwarded-for", f"{xff}, {ip}" if xff else ip))
            query = ex.query
            injected = ex.peek(INJECTED_SECRETS)
            if injected:
                forwarded, query = redacted(forwarded, query, injected)
            doc = {
                "upstream": name,
                "method": ex.method,
                "path": ex.path,
                "query": query,
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


def redacted(
    headers: list[tuple[str, str]], query: str, injected: Injected
) -> tuple[list[tuple[str, str]], str]:
    """``headers`` and ``query`` with every injected value replaced by where it came from."""
    marked = injected.headers
    shown = [(k, f"<redacted: {marked[k]}>" if k in marked else v) for k, v in headers]
    if injected.query and query:
        parts = []
        for part in query.split("&"):
            param = unquote_plus(part.partition("=")[0])
            source = injected.query.get(param)
            parts.append(part if source is None else f"{param}=<redacted: {source}>")
        query = "&".join(parts)
    return shown, query


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("echo", EchoAdapter)
