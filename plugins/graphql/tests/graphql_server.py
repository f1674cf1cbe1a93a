"""A real GraphQL server for the tests: ariadne's ASGI app on uvicorn, on 127.0.0.1.

Started once a session on its own event loop in a thread (:class:`ServedInThread`), so tests,
the sidecar (in the test's loop) and the gql client all call it over real sockets. What it
does is told by :class:`Script` (reset before each test): ``fail`` makes the next calls of
``flaky`` (a non-null root field: the answer is ``errors`` and ``"data": null``) raise errors
with the given codes; ``calls`` counts each root field's resolver runs, so a test sees how many
times the sidecar sent an operation; ``headers`` keeps the last request's headers.
Subscriptions (``ticks``) are served over SSE (ariadne's GraphQL-SSE handler). Every JSON
answer is a 200, as Apollo Server and Strawberry answer ``application/json`` (ariadne makes an
answer without data a 400): the sidecar must tell a failure from the body.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from ariadne import (
    MutationType,
    ObjectType,
    QueryType,
    SubscriptionType,
    make_executable_schema,
)
from ariadne.asgi import GraphQL
from ariadne.contrib.sse import GraphQLHTTPSSEHandler
from graphql import GraphQLError
from starlette.responses import JSONResponse

SDL = """
type Query {
  hello(name: String): String!
  user(id: ID!): User
  flaky: String!
  partial: Partial
}
type Partial { ok: String, broken: String }
type User { id: ID!, name: String!, friend: User }
type Mutation { addItem(name: String!): Int!, setFlag(on: Boolean!): Int! }
type Subscription { ticks(n: Int!): Int! }
"""


@dataclass
class Script:
    fail: list[str | None] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)

    def reset(self) -> None:
        self.fail.clear()
        self.calls.clear()
        self.headers.clear()
        self.bodies.clear()

    def maybe_fail(self, field_name: str) -> None:
        self.calls[field_name] += 1
        if self.fail:
            code = self.fail.pop(0)
            extensions = {"code": code} if code is not None else None
            raise GraphQLError(f"{field_name} failed", extensions=extensions)


class AlwaysOk(GraphQLHTTPSSEHandler):
    """ariadne's handler, answering 200 whatever the body says."""

    async def create_json_response(
        self, request: Any, result: dict[str, Any], success: bool
    ) -> Any:
        return JSONResponse(result, status_code=200)


def make_app(script: Script) -> Any:
    query, mutation, subscription = QueryType(), MutationType(), SubscriptionType()
    user = ObjectType("User")
    partial = ObjectType("Partial")

    @query.field("hello")
    def hello(_: Any, __: Any, name: str = "world") -> str:
        script.calls["hello"] += 1
        return f"hello {name}"

    @query.field("user")
    def resolve_user(_: Any, __: Any, id: str) -> dict[str, str]:  # noqa: A002 (GraphQL's name)
        script.calls["user"] += 1
        return {"id": id, "name": f"user {id}"}

    @user.field("friend")
    def friend(obj: dict[str, str], _: Any) -> dict[str, str]:
        return {"id": obj["id"] + "f", "name": "friend"}

    @query.field("flaky")
    def flaky(*_: Any) -> str:
        script.maybe_fail("flaky")
        return "fine"

    @query.field("partial")
    def resolve_partial(*_: Any) -> dict[str, str]:
        return {"ok": "yes"}

    @partial.field("broken")
    def broken(*_: Any) -> str:
        raise GraphQLError("broken field", extensions={"code": "INTERNAL_SERVER_ERROR"})

    @mutation.field("addItem")
    def add_item(_: Any, __: Any, name: str) -> int:
        script.maybe_fail("addItem")
        return len(name)

    @mutation.field("setFlag")
    def set_flag(_: Any, __: Any, on: bool) -> int:
        script.maybe_fail("setFlag")
        return int(on)

    @subscription.source("ticks")
    async def ticks_source(_: Any, __: Any, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @subscription.field("ticks")
    def ticks(value: int, *_: Any, **__: Any) -> int:
        return value

    schema = make_executable_schema(SDL, query, mutation, subscription, user, partial)
    graphql_app = GraphQL(schema, http_handler=AlwaysOk())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            script.headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        await graphql_app(scope, receive, send)

    return app


class ServedInThread:
    """uvicorn serving ``make_app(script)`` on 127.0.0.1 (an ephemeral port) in a thread;
    HTTPS with ``certfile`` and ``keyfile``."""

    def __init__(self, certfile: str | None = None, keyfile: str | None = None) -> None:
        self.script = Script()
        self.port = 0
        self.scheme = "http" if certfile is None else "https"
        config = uvicorn.Config(
            make_app(self.script),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedInThread:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(500):  # up to 10 s for uvicorn to bind
            if self.server.started:
                break
            if not self._thread.is_alive():
                raise RuntimeError("the GraphQL test server failed to start")
            deadline.wait(0.02)
        else:
            raise RuntimeError("the GraphQL test server did not start within 10 s")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
