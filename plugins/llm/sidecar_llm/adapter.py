"""The ``llm`` adapter: an upstream whose calls go to LLM providers, by path under its route.

``/<upstream>/v1/chat/completions`` (OpenAI-compatible, streamed or not), ``/v1/embeddings``,
``/v1/models`` and ``/v1/messages`` (Anthropic-native): the app's request names a model group
(``model``), the router tries its deployments and fallbacks (:mod:`.calls`), and the answer
comes back in the shape the app called with. Any other path is 404 in OpenAI's shape.

One adapter per sidecar; each upstream's provider clients and cooldown state are kept across
reloads while its options stay equal (a changed upstream gets new ones; the old clients are
closed once no upstream uses them). Not here: what the ``llm_gateway`` filter hands over
(:mod:`.handoff`), translation.
"""

from __future__ import annotations

__all__ = ["LLMAdapter"]

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from sidecar import (
    Adapter,
    AdapterServices,
    AuthConfigProblem,
    Classifier,
    Exchange,
    Handler,
    Response,
    SecretValue,
    SidecarError,
    UpstreamConfig,
    classify_http,
    read_body,
)

from .call_state import CallSpec, Upstream
from .calls import call
from .config import LLMOptions
from .dialects import ANTHROPIC, OPENAI, Dialect, json_response
from .handoff import HANDOFF
from .limits import LimitExceeded
from .metrics import LLMMetrics
from .providers import ProviderClient
from .router import Router

ROUTES: dict[tuple[str, str], tuple[Dialect, str]] = {
    ("POST", "/v1/chat/completions"): (OPENAI, "chat"),
    ("POST", "/v1/embeddings"): (OPENAI, "embeddings"),
    ("POST", "/v1/messages"): (ANTHROPIC, "messages"),
}


class UnusableSetting(ValueError):
    """A setting the upstream cannot be built with; ``key`` is its path under the upstream
    (reported by start-up and ``sidecar check`` as ``upstreams.<u>.<key>: <reason>``)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


class LLMAdapter(Adapter):
    options_model = LLMOptions

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        self.metrics = LLMMetrics.of(services.metrics.registry)
        #: upstream name → (its options, its shared state)
        self._live: dict[str, tuple[LLMOptions, Upstream]] = {}
        self._retired: list[ProviderClient] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _upstream(self, name: str, options: LLMOptions) -> Upstream:
        have = self._live.get(name)
        if have is not None and have[0] == options:
            return have[1]
        clients: dict[str, ProviderClient] = {}
        for pname, provider in options.providers.items():
            key_path = f"options.providers.{pname}.api_key"
            try:
                key = SecretValue(provider.api_key, key_path)
            except AuthConfigProblem as e:
                raise UnusableSetting(key_path, str(e)) from None
            clients[pname] = ProviderClient(pname, provider, key, options.max_response_bytes)
        up = Upstream(name, options, Router(options), clients, self.metrics, self._tasks)
        if have is not None:
            self._retired.extend(have[1].clients.values())
        self._live[name] = (options, up)
        return up

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        options = LLMOptions.model_validate(upstream.options)
        up = self._upstream(name, options)
        attempts = self.services.metrics.attempts(name)
        max_body = options.max_request_bytes

        async def llm(exchange: Exchange) -> Response:
            attempts.response()
            route = ROUTES.get((exchange.method, exchange.path))
            if route is None:
                if exchange.method == "GET" and exchange.path == "/v1/models":
                    return models(up, exchange)
                # an Anthropic SDK says so in every request: answer it in its shape
                front = ANTHROPIC if "anthropic-version" in exchange.headers else OPENAI
                return front.error(404, f"no LLM endpoint {exchange.method} {exchange.path}")
            dialect, endpoint = route
            try:
                body = json.loads(await read_body(exchange, max_body))
            except (ValueError, RecursionError):  # RecursionError: nested past the parser
                return dialect.error(400, "the request body is not JSON")
            except SidecarError as e:  # too large: answered in the front's shape all the same
                return dialect.error(e.status, f"the request body is over {max_body} bytes")
            if not isinstance(body, dict):
                return dialect.error(400, "the request body is not a JSON object")
            group = body.get("model")
            if not isinstance(group, str) or group not in options.groups:
                return dialect.unknown_model(group)
            # anything else would be read as a plain call but sent on as a stream: the
            # provider's answer then looks broken, and the deployment would be cooled down
            options_ = body.get("stream_options")
            if not isinstance(body.get("stream"), bool | None):
                return dialect.error(400, "stream: expected a boolean", param="stream")
            if not isinstance(options_, dict | None):
                message = "stream_options: expected an object"
                return dialect.error(400, message, param="stream_options")
            limiter = None
            key = ""
            handoff = exchange.peek(HANDOFF)
            if handoff is not None:
                limiter = handoff.limiters.get(group)
            if limiter is not None:
                key = limiter.key(exchange)
                try:
                    await limiter.admit(key)
                except LimitExceeded as e:
                    self.metrics.limited.labels(name, group, e.what).inc()
                    return dialect.error(
                        429,
                        f"the {e.what} per minute of {group!r} are used up",
                        type_="rate_limit_error",
                        retry_after=e.retry_after,
                    )
            stream = body.get("stream") is True
            include_usage = isinstance(options_, dict) and options_.get("include_usage") is True
            tracer = handoff.tracer if handoff is not None else None
            spec = CallSpec(
                dialect, endpoint, group, body, stream, include_usage, limiter, key, tracer
            )
            return await call(up, spec, exchange)

        return llm

    def classifier(self, name: str, upstream: UpstreamConfig) -> Classifier:
        """The sidecar's retry and circuit breaker count no answer of the gateway as a failure:
        it has failed over and cooled deployments down itself, and a breaker over the whole
        upstream would shut every group for one provider's outage."""
        return _errors_only

    def describe(self, name: str) -> dict[str, Any]:
        have = self._live.get(name)
        if have is None:
            return {}
        options, up = have
        return {
            "providers": {n: p.kind for n, p in options.providers.items()},
            "groups": sorted(options.groups),
            "cooling_down": up.router.cooling(),
        }

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        for name in [n for n in self._live if n not in live]:
            self._retired.extend(self._live.pop(name)[1].clients.values())
        retired, self._retired = self._retired, []
        for client in retired:
            await client.aclose()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, up in self._live.values():
            for client in up.clients.values():
                await client.aclose()
        for client in self._retired:
            await client.aclose()
        self._live.clear()
        self._retired.clear()


def _errors_only(response: Response | None, error: BaseException | None) -> tuple[str, ...]:
    return () if error is None else classify_http(None, error)


def models(up: Upstream, exchange: Exchange) -> Response:
    """The configured groups as the model list, in the shape of the SDK that asked."""
    names = list(up.options.groups)
    if exchange.headers.get("anthropic-version") is not None:
        data = [
            {
                "type": "model",
                "id": n,
                "display_name": n,
                "created_at": "1970-01-01T00:00:00Z",
            }
            for n in names
        ]
        return json_response(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            },
        )
    listed = [{"id": n, "object": "model", "created": 0, "owned_by": "sidecar"} for n in names]
    return json_response(200, {"object": "list", "data": listed})
