"""Run a gRPC test module against both servers of the gRPC port (``grpc.server``): grpcio's and
the HTTP/2 front. ``pytestmark = pytest.mark.usefixtures("grpc_server")`` and
``from tests.integration.grpc_servers import grpc_server`` in the module; every sidecar the test
starts (in-process or as a child process) then gets ``grpc.server`` set to the parameter, unless
its config sets one itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

import sidecar.testing

SERVERS = ("grpcio", "h2")


@pytest.fixture(params=SERVERS)
def grpc_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The gRPC port's server for this test: ``grpcio`` or ``h2``."""
    server: str = request.param
    plain = sidecar.testing._config_text

    def with_server(config: Mapping[str, Any] | str) -> str:
        text = plain(config)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return text  # a test of a broken file
        if not isinstance(data, dict) or not isinstance(data.get("grpc"), dict):
            return text
        if "server" in data["grpc"]:
            return text
        data["grpc"] = {**data["grpc"], "server": server}
        return yaml.safe_dump(data)

    monkeypatch.setattr(sidecar.testing, "_config_text", with_server)
    yield server
