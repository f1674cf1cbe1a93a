"""The contract verifier: a pact's interactions sent through a running sidecar, one verdict each.

For each interaction, in the pact's order: its provider states are set up (``POST`` of
``{"state": NAME, "params": {...}, "action": "setup"}`` to the state-change URL, as Pact's own
verifier does), then its request goes to the sidecar's HTTP port as ``/<upstream><path>``, so it
takes the upstream's whole chain (credentials, headers, retries...) to the real provider, and the
answer is compared with the expected response (:mod:`.rules`).

:func:`verification_sidecar` starts the sidecar from a config file as ``sidecar run`` would,
but on ephemeral loopback ports, without the inbound listener, the gRPC port or a separate
metrics port: the verifier needs only the HTTP front.

Not here: reading pacts (:mod:`.pact`), printing and exit codes (:mod:`.cli`).
"""

from __future__ import annotations

__all__ = ["Verdict", "verification_sidecar", "verify_interactions"]

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from ..app import Sidecar
from ..config import load_data, validate_data
from ..plugins import make_plugin_host
from .compare import compare_response
from .pact import PactInteraction

#: A response body longer than this is cut before comparing (and fails if JSON was expected).
MAX_RESPONSE_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    """How one interaction fared: no failures is a pass."""

    interaction: PactInteraction
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@asynccontextmanager
async def verification_sidecar(config_path: str | None) -> AsyncIterator[Sidecar]:
    """A sidecar running the config at ``config_path`` (the embedded default when ``None``) with
    only its admin and HTTP ports, both on ephemeral loopback ports. Raises ``ConfigError``."""
    data, name = load_data(config_path)
    data["admin"] = {**_section(data, "admin"), "address": "127.0.0.1:0"}
    data["admin"].pop("metrics_address", None)
    data["http"] = {**_section(data, "http"), "address": "127.0.0.1:0"}
    data["grpc"] = {**_section(data, "grpc"), "enabled": False}
    data.pop("inbound", None)
    plugins = data.get("plugins")
    disabled = plugins.get("disabled") if isinstance(plugins, dict) else None
    host = make_plugin_host([d for d in disabled or [] if isinstance(d, str)])
    config = validate_data(data, name, host.schemas())
    sidecar = Sidecar(config, config_path=None, plugin_host=host)
    await sidecar.start()
    try:
        yield sidecar
    finally:
        await sidecar.drain()


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, dict) else {}


async def verify_interactions(
    interactions: Sequence[PactInteraction],
    base_url: str,
    *,
    state_url: str | None = None,
    seconds_per_call: float = 30.0,
) -> list[Verdict]:
    """Each interaction sent to ``base_url`` (``http://127.0.0.1:PORT/<upstream>``), judged;
    each state setup and each request is bounded by ``seconds_per_call``."""
    verdicts = []
    client_timeout = aiohttp.ClientTimeout(total=seconds_per_call)
    async with aiohttp.ClientSession(timeout=client_timeout, trust_env=False) as session:
        for interaction in interactions:
            failures = await _set_up(session, interaction, state_url)
            if not failures:
                failures = await _exchange(session, interaction, base_url)
            verdicts.append(Verdict(interaction, tuple(failures)))
    return verdicts


async def _set_up(
    session: aiohttp.ClientSession, interaction: PactInteraction, state_url: str | None
) -> list[str]:
    if not interaction.states:
        return []
    if state_url is None:
        names = ", ".join(repr(name) for name, _ in interaction.states)
        return [f"provider states {names} need --provider-states-url"]
    failures = []
    for name, params in interaction.states:
        doc = {"state": name, "params": dict(params), "action": "setup"}
        try:
            async with session.post(state_url, json=doc) as r:
                await r.read()
                if r.status >= 300:
                    failures.append(f"provider state {name!r}: setup answered {r.status}")
        except (aiohttp.ClientError, TimeoutError) as e:
            failures.append(f"provider state {name!r}: setup failed: {type(e).__name__}: {e}")
    return failures


async def _exchange(
    session: aiohttp.ClientSession, interaction: PactInteraction, base_url: str
) -> list[str]:
    request = interaction.request
    target = base_url + quote(request.path, safe="/:@!$&'()*+,;=-._~%")
    if request.query:
        target += "?" + urlencode(request.query)
    try:
        async with session.request(
            request.method,
            URL(target, encoded=True),
            headers=list(request.headers),
            data=request.body,
            allow_redirects=False,
        ) as r:
            body = await _read_bounded(r.content)
            headers = {k.lower(): ", ".join(r.headers.getall(k)) for k in r.headers}
            status = r.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:  # ValueError: a CR in a header
        return [f"request failed: {type(e).__name__}: {e}"]
    return compare_response(interaction.response, status, headers, body)


async def _read_bounded(stream: aiohttp.StreamReader) -> bytes:
    """The body up to :data:`MAX_RESPONSE_BODY` bytes (the rest is not read)."""
    parts, size = [], 0
    while size < MAX_RESPONSE_BODY:
        chunk = await stream.read(MAX_RESPONSE_BODY - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
