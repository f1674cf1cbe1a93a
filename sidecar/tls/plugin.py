"""The built-in TLS plugin: a lifespan that watches the certificates the sidecar presents.

While the sidecar runs it serves ``sidecar_certificate_expiry_seconds`` (a collector on the
sidecar's registry, computed at scrape time) and checks, shortly after start-up and then every
minute, whether one of those certificates expires within 7 days (:class:`~.expiry.ExpiryWarnings`).
Registered like any plugin (``BUILTIN_PLUGINS``). The inbound filters are built-in filters,
registered with the others by :mod:`sidecar.filters`; the listener reloads its own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..api import LifespanRegistry, hookimpl
from .expiry import CertFiles, CertificateExpiry, ExpiryWarnings, Presented
from .identity import RESOURCE as INBOUND_TLS
from .material import TlsMaterial

if TYPE_CHECKING:
    from ..api import RuntimeView

log = logging.getLogger("sidecar.tls")

#: Seconds after start-up before the first expiry check (the listeners are up by then), and
#: between two checks.
FIRST_CHECK = 1.0
CHECK_EVERY = 60.0


def presented(sidecar: RuntimeView, files: CertFiles) -> list[Presented]:
    """The certificates ``sidecar`` presents now: its inbound listener's, its upstreams'."""
    out = []
    # the inbound listener's material, as the composition publishes it (the one the identity
    # header reads): replaced when a reload moves the files, absent without ``inbound``
    inbound = sidecar.resources.get(INBOUND_TLS)
    if isinstance(inbound, TlsMaterial) and inbound.info is not None:
        out.append(Presented(inbound.info, inbound.cert_path or "", listener="inbound"))
    for name, up in sidecar.config.upstreams.items():
        if up.tls is not None and up.tls.cert is not None:
            info = files.info(up.tls.cert)
            if info is not None:
                out.append(Presented(info, up.tls.cert, upstream=name))
    return out


async def _watch(sidecar: RuntimeView, files: CertFiles) -> None:
    warnings = ExpiryWarnings()
    await asyncio.sleep(FIRST_CHECK)
    while True:
        try:
            warnings.check(presented(sidecar, files), datetime.now(UTC))
        except Exception:  # a bug here must not stop the checks for good
            log.exception("certificate expiry check failed")
        await asyncio.sleep(CHECK_EVERY)


@asynccontextmanager
async def certificates(sidecar: RuntimeView) -> AsyncIterator[None]:
    files = CertFiles()
    collector = CertificateExpiry(lambda: presented(sidecar, files))
    sidecar.metrics.registry.register(collector)
    task = asyncio.get_running_loop().create_task(_watch(sidecar, files))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sidecar.metrics.registry.unregister(collector)


@hookimpl(trylast=True)
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("certificates", certificates)
