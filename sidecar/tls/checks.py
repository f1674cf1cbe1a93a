"""Certificate, key and CA files checked when a config is loaded (``sidecar check`` and ``run``).

Every TLS file the config names is loaded the way the sidecar will load it (the inbound
listener's pair and CA, each upstream's CA and client pair), so a missing file, a key that is not
the certificate's or a file without PEM in it is a problem at its key path
(``inbound.tls.key: /etc/sidecar/tls.key: it is not the private key of the certificate``), found
by ``sidecar check`` and stopping ``sidecar run`` with exit code 2, like a missing secret. Not
here: the files' later changes (:mod:`.material`).
"""

from __future__ import annotations

__all__ = ["tls_problems"]

from ..config.models import SidecarConfig
from ..errors import ConfigError, ConfigProblem
from .contexts import client_context, server_material
from .material import TlsFileError


def tls_problems(config: SidecarConfig, file: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if config.inbound is not None:
        try:
            server_material(config.inbound.tls, file)
        except ConfigError as e:
            problems += e.problems
    for name, up in config.upstreams.items():
        if up.tls is None or (up.tls.ca is None and up.tls.cert is None):
            continue
        try:
            client_context(up.tls)
        except TlsFileError as e:
            problems.append(ConfigProblem(file, f"upstreams.{name}.tls.{e.key}", str(e)))
    return problems
