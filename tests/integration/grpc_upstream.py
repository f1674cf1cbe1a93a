"""A real gRPC upstream for tests: ``echo.v1.Echo`` (tests/grpc_echo/echo.proto) on grpc.aio.

``async with EchoUpstream() as up:`` serves on 127.0.0.1 (an ephemeral port; TLS or mTLS with
``tls=``) and records every call it saw in ``up.calls`` (:class:`SeenCall`: method, metadata,
the deadline left when the call arrived, messages received, whether the app cancelled it). Each
request message says how to answer (fail with a code, details and binary details; wait; stream N
messages; send the request metadata back), so tests need no server of their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tests.grpc_echo import echo_pb2, echo_pb2_grpc

SERVICE = "echo.v1.Echo"


@dataclass
class SeenCall:
    """What the upstream saw of one call."""

    method: str
    metadata: list[tuple[str, Any]]
    #: seconds left before the deadline when the call arrived, ``None`` without a deadline.
    deadline_remaining: float | None
    received: int = 0
    #: response messages handed to grpcio (a write waits for flow control: a reader that
    #: stops reading stops it).
    sent: int = 0
    #: the call was cancelled (by the app, the sidecar, or its deadline) while being handled.
    cancelled: bool = False
    cancelled_at: float | None = None
    #: the status code this call was told to end with by ``EchoUpstream.fail_next`` (0: none).
    scripted_code: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def meta(self, key: str) -> Any:
        return next((v for k, v in self.metadata if k == key), None)


class _Echo(echo_pb2_grpc.EchoServicer):
    def __init__(self, upstream: EchoUpstream) -> None:
        self.up = upstream

    def _begin(self, method: str, context: grpc.aio.ServicerContext) -> SeenCall:
        seen = SeenCall(
            method,
            [(k, v) for k, v in (context.invocation_metadata() or ())],
            context.time_remaining(),
        )
        self.up.calls.append(seen)
        if self.up.fail_next:
            seen.scripted_code = self.up.fail_next.pop(0)
        return seen

    def _answer(self, req: echo_pb2.EchoRequest, seen: SeenCall, index: int) -> Any:
        seen.sent += 1
        if req.empty_response:
            return echo_pb2.EchoResponse()
        payload = b"x" * req.response_size if req.response_size else req.payload
        return echo_pb2.EchoResponse(
            payload=payload,
            index=index,
            received=seen.received,
            metadata=[
                echo_pb2.MetadataEntry(key=k, value=v if isinstance(v, bytes) else v.encode())
                for k, v in seen.metadata
            ],
            deadline_remaining=seen.deadline_remaining or 0.0,
        )

    async def _prelude(
        self, req: echo_pb2.EchoRequest, seen: SeenCall, context: grpc.aio.ServicerContext
    ) -> None:
        """Delay, metadata echo and failure, as the request asks."""
        if req.delay_ms:
            await asyncio.sleep(req.delay_ms / 1000)
        if req.echo_metadata:
            await context.send_initial_metadata(
                [(f"echo-{k}", v) for k, v in seen.metadata if _echoable(k)]
            )
            context.set_trailing_metadata(
                [(f"trailer-{k}", v) for k, v in seen.metadata if _echoable(k)]
            )

    async def _fail(
        self, req: echo_pb2.EchoRequest, seen: SeenCall, context: grpc.aio.ServicerContext
    ) -> None:
        code = seen.scripted_code or req.fail_code
        if not code:
            return
        trailing = [(k, v) for k, v in (context.trailing_metadata() or ())]
        trailing.append(("fail-marker", "yes"))
        if req.fail_details_bin:
            trailing.append(("grpc-status-details-bin", req.fail_details_bin))
        context.set_trailing_metadata(trailing)
        await context.abort(grpc.StatusCode(_code(code)), req.fail_details)

    async def _run(
        self, seen: SeenCall, context: grpc.aio.ServicerContext, body: Callable[[], Any]
    ) -> Any:
        try:
            return await body()
        except asyncio.CancelledError:
            seen.cancelled = True
            seen.cancelled_at = time.monotonic()
            raise
        finally:
            seen.finished.set()

    async def Unary(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        seen = self._begin("Unary", context)
        seen.received = 1

        async def body() -> Any:
            await self._prelude(request, seen, context)
            await self._fail(request, seen, context)
            return self._answer(request, seen, 0)

        return await self._run(seen, context, body)

    async def ServerStream(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> None:
        seen = self._begin("ServerStream", context)
        seen.received = 1

        async def body() -> None:
            await self._prelude(request, seen, context)
            for i in range(max(1, request.repeat)):
                await context.write(self._answer(request, seen, i))
            await self._fail(request, seen, context)

        await self._run(seen, context, body)

    async def ClientStream(  # noqa: N802
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> Any:
        seen = self._begin("ClientStream", context)

        async def body() -> Any:
            parts, last = [], echo_pb2.EchoRequest()
            async for req in request_iterator:
                seen.received += 1
                parts.append(req.payload)
                last = req
                if req.delay_ms:
                    await asyncio.sleep(req.delay_ms / 1000)
            await self._prelude(
                echo_pb2.EchoRequest(echo_metadata=last.echo_metadata), seen, context
            )
            await self._fail(last, seen, context)
            return self._answer(echo_pb2.EchoRequest(payload=b"".join(parts)), seen, 0)

        return await self._run(seen, context, body)

    async def Bidi(  # noqa: N802
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> None:
        seen = self._begin("Bidi", context)

        async def body() -> None:
            index = 0
            first = True
            async for req in request_iterator:
                seen.received += 1
                if first:
                    await self._prelude(req, seen, context)
                    first = False
                elif req.delay_ms:
                    await asyncio.sleep(req.delay_ms / 1000)
                await self._fail(req, seen, context)
                for _ in range(max(1, req.repeat)):
                    await context.write(self._answer(req, seen, index))
                    index += 1

        await self._run(seen, context, body)


def _echoable(key: str) -> bool:
    return not key.startswith(":") and key not in ("user-agent", "grpc-accept-encoding")


def _code(number: int) -> tuple[int, str]:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value  # type: ignore[no-any-return]
    raise ValueError(f"no gRPC status code {number}")


class EchoUpstream:
    """``echo.v1.Echo`` on 127.0.0.1; ``tls=(cert, key, client_ca)`` serves TLS (mTLS when
    ``client_ca`` is given)."""

    def __init__(
        self,
        *,
        tls: tuple[bytes, bytes, bytes | None] | None = None,
        port: int = 0,
        options: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.calls: list[SeenCall] = []
        #: status codes the next calls end with, one per call, whatever their requests say
        #: (an upstream that fails N calls, then recovers: retries, the breaker).
        self.fail_next: list[int] = []
        self.tls = tls
        self.port = port
        self.options = options or []
        self.server: grpc.aio.Server | None = None

    @property
    def url(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> EchoUpstream:
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                *self.options,
            ]
        )
        echo_pb2_grpc.add_EchoServicer_to_server(_Echo(self), self.server)
        address = f"127.0.0.1:{self.port}"
        if self.tls is None:
            port = self.server.add_insecure_port(address)
        else:
            cert, key, client_ca = self.tls
            creds = grpc.ssl_server_credentials(
                [(key, cert)],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
            port = self.server.add_secure_port(address, creds)
        if not port:
            raise RuntimeError(f"the echo upstream cannot listen on {address}")
        self.port = port
        await self.server.start()
        return self

    async def stop(self, grace: float | None = None) -> None:
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None

    async def __aenter__(self) -> EchoUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_call(self, count: int = 1, limit: float = 5.0) -> SeenCall:
        """The ``count``-th call (1-based), waiting for it up to ``limit`` seconds."""
        async with asyncio.timeout(limit):
            while len(self.calls) < count:  # noqa: ASYNC110 - polled: grpc has no hook for it
                await asyncio.sleep(0.005)
        return self.calls[count - 1]
