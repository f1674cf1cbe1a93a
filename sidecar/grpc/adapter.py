"""The ``grpc`` adapter (``adapter: grpc``): a built-in plugin that calls gRPC upstreams.

It owns one channel per upstream (:mod:`.channels`: kept across reloads while its settings and
certificate files stay the same, retired with a grace when they change) and builds each
upstream's terminal handler, whose calls are :mod:`.upstream_call`'s: every call, whatever its
RPC kind, a stream of raw messages each way, grpcio's errors translated there.

The adapter is registered (and built) in every sidecar, but grpcio is imported only when its
first channel is opened, composing the first upstream with ``adapter: grpc``: a sidecar without
one never loads grpcio for it (about 10 MB resident, a tenth of a second at start-up).
"""

from __future__ import annotations

__all__ = ["GRPC_ADAPTER", "GrpcAdapter"]

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api import GRPC_STATUSES, Adapter, AdapterRegistry, AdapterServices, AdapterTraits, hookimpl
from ..chain import Handler
from ..config.models import UpstreamConfig
from ..outcomes import Classifier
from .channels import ChannelSpec, GrpcUpstreamOptions, channel_spec, open_channel
from .wire import classify_grpc

if TYPE_CHECKING:
    import grpc

GRPC_ADAPTER = "grpc"
#: in-flight calls on a channel a reload replaced get this long before it is closed.
RETIRE_GRACE = 60.0


@dataclass
class _Held:
    key: tuple[Any, ...]
    spec: ChannelSpec
    channel: grpc.aio.Channel


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
        spec = channel_spec(up, options)
        key = spec.key_id
        for table in (self.channels, self._pending):
            have = table.get(name)
            if have is not None and have.key == key:
                return have
        held = _Held(key, spec, open_channel(spec))
        if name in self.channels:
            # a reload changed it: in service once the new table is live (retire)
            stale = self._pending.pop(name, None)
            if stale is not None:
                self._close_later(stale.channel, 0.0)  # built by a refused reload: never used
            self._pending[name] = held
        else:
            self.channels[name] = held
        return held

    def _close_later(self, channel: grpc.aio.Channel, grace: float) -> None:
        task = asyncio.get_running_loop().create_task(channel.close(grace))
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

    def _state(self, name: str) -> Any:
        held = self.channels.get(name)
        return None if held is None else held.channel.get_state(try_to_connect=False)

    def health(self, name: str) -> bool | None:
        state = self._state(name)
        # grpc.ChannelConnectivity, by name: this module does not import grpcio (see above)
        known = state.name if state is not None else None
        if known == "TRANSIENT_FAILURE":
            return False
        if known == "READY":
            return True
        return None

    def describe(self, name: str) -> dict[str, Any]:
        held = self.channels.get(name)
        if held is None:
            return {}
        state = self._state(name)
        return {
            "target": held.spec.target,
            "tls": held.spec.tls,
            "mtls": held.spec.mtls,
            "channel_state": state.name.lower() if state is not None else None,
        }

    def classifier(self, name: str, upstream: UpstreamConfig) -> Classifier:
        return classify_grpc

    # --- calls -------------------------------------------------------------------------------

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        held = self._channel(name, upstream)
        # grpcio's call code: imported with the first gRPC upstream composed (see the module)
        from .upstream_call import call_handler

        return call_handler(name, held.channel, held.spec.target, self.services.metrics)


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add(GRPC_ADAPTER, GrpcAdapter)
