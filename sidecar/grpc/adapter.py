"""The ``grpc`` adapter (``adapter: grpc``): a built-in plugin that calls gRPC upstreams.

It owns one channel per upstream (:mod:`.h2_channel`: the sidecar's own HTTP/2 client on
:mod:`sidecar.http2`, TLS from the upstream's ``tls`` as for HTTP upstreams; kept across reloads
while its settings stay the same, retired with a grace when they change) and builds each
upstream's terminal handler, whose calls are :mod:`.h2_upstream_call`'s: raw messages each way,
framed and deframed here, every call a stream on the channel's connection.

The adapter is registered (and built) in every sidecar and imports no gRPC library: grpcio is
not needed to call gRPC upstreams (a sidecar loads it only for ``grpc.server: grpcio`` or an
OTLP/gRPC exporter).
"""

from __future__ import annotations

__all__ = ["GRPC_ADAPTER", "GrpcAdapter"]

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api import GRPC_STATUSES, Adapter, AdapterRegistry, AdapterServices, AdapterTraits, hookimpl
from ..chain import Handler
from ..config.models import UpstreamConfig
from ..outcomes import Classifier
from .channels import GrpcUpstreamOptions, unary_matcher
from .h2_channel import H2Channel
from .h2_channel_target import ChannelTarget, channel_target
from .h2_upstream_call import call_handler
from .wire import classify_grpc

GRPC_ADAPTER = "grpc"
#: in-flight calls on a channel a reload replaced get this long before it is closed.
RETIRE_GRACE = 60.0


@dataclass
class _Held:
    #: what the channel was built from: an equal target on a reload keeps the channel
    key: ChannelTarget
    channel: H2Channel


class GrpcAdapter(Adapter):
    options_model = GrpcUpstreamOptions
    #: the upstream answers in gRPC terms: a status in trailers (CLIENT spans read it there)
    traits = AdapterTraits(statuses=GRPC_STATUSES)

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        #: channels the live route table uses, by upstream name.
        self.channels: dict[str, _Held] = {}
        #: channels built for a reload whose route table is not live yet.
        self._pending: dict[str, _Held] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # --- channels ----------------------------------------------------------------------------

    def _channel(self, name: str, up: UpstreamConfig) -> _Held:
        options = GrpcUpstreamOptions.model_validate(up.options)
        key = channel_target(up, options)
        for table in (self.channels, self._pending):
            have = table.get(name)
            if have is not None and have.key == key:
                return have
        held = _Held(key, H2Channel(name, key))
        if name in self.channels:
            # a reload changed it: in service once the new table is live (retire)
            stale = self._pending.pop(name, None)
            if stale is not None:
                self._close_later(stale.channel, 0.0)  # built by a refused reload: never used
            self._pending[name] = held
        else:
            self.channels[name] = held
        return held

    def _close_later(self, channel: H2Channel, grace: float) -> None:
        task = asyncio.get_running_loop().create_task(channel.aclose(grace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        for name, held in self._pending.items():
            old = self.channels.get(name)
            self.channels[name] = held
            if old is not None:
                # calls of the old table may still run on it: they get a grace
                self._close_later(old.channel, RETIRE_GRACE)
        self._pending.clear()
        for name in list(self.channels):
            up = live.get(name)
            if up is None or up.adapter != GRPC_ADAPTER:
                self._close_later(self.channels.pop(name).channel, RETIRE_GRACE)

    async def aclose(self) -> None:
        for held in (*self.channels.values(), *self._pending.values()):
            self._close_later(held.channel, 0.0)
        self.channels.clear()
        self._pending.clear()
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=5.0)

    def health(self, name: str) -> bool | None:
        held = self.channels.get(name)
        state = held.channel.state if held is not None else None
        if state == "transient_failure":
            return False
        if state == "ready":
            return True
        return None

    def describe(self, name: str) -> dict[str, Any]:
        held = self.channels.get(name)
        if held is None:
            return {}
        target = held.key
        return {
            "target": target.target,
            "tls": target.tls is not None,
            "mtls": target.tls is not None and target.tls.cert is not None,
            "channel_state": held.channel.state,
        }

    def classifier(self, name: str, upstream: UpstreamConfig) -> Classifier:
        return classify_grpc

    # --- calls -------------------------------------------------------------------------------

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        held = self._channel(name, upstream)
        unary = unary_matcher(GrpcUpstreamOptions.model_validate(upstream.options).unary_methods)
        return call_handler(name, held.channel, held.key.target, self.services.metrics, unary)


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add(GRPC_ADAPTER, GrpcAdapter)
