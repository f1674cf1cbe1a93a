"""docs/image.md's "Running it locally", run with podman on the image the tests build.

The image and podman's private configuration come from the shared ``image`` and ``podman``
fixtures (``image_build``: ``scripts/build-image``, once per test session). The doc's config
is written and its commands run in a user's terminal (``doc_session``) as shown, except, each
for a reason:

- ``-p 127.0.0.1:15030:15030`` becomes ``--network host``: the doc's upstream on the host
  (``host.containers.internal:8080``) is here a fake on the host's 127.0.0.1, which a bridged
  container cannot reach without leaving loopback. Sharing the host's namespace keeps every call
  on 127.0.0.1 (the published-port path itself is ``test_container_image``'s probe test);
- every port is a free one (``doc_session.PortMap``), the listeners the config leaves on their
  default ports included, since the host's namespace is shared; ``0.0.0.0`` becomes 127.0.0.1;
- the container's name is unique to the run, and ``my-app`` is the image's own ``python``
  calling the egress port, as an app container in the pod would;
- ``curl .../readyz`` runs once ``/readyz`` answers 200 (polled, bounded), as a user re-runs it
  while the sidecar starts.

Not run: ``docker build``/``podman build -t sidecar:0.1.0 .`` (``python:3.11-slim`` needs a
registry; ``scripts/build-image`` builds the same Dockerfile on a stand-in base) and the Docker
forms (no Docker engine here).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from sidecar.testing import FakeUpstream

from .doc_blocks import shell_commands, walkthrough
from .doc_session import DEFAULT_LISTENERS, DocSession, PortMap, serving
from .image_build import BUILD, VERSION
from .podman_cli import Podman
from .test_container_image import answers_ready, wait_ready

DOC = "docs/image.md"
#: what the doc's made-up upstream answers here
ANSWER = "payments says hello"


async def _payments(request: web.Request) -> web.Response:
    return web.Response(text=ANSWER)


@pytest.mark.timeout(BUILD + 120)  # the first build on a machine takes minutes
def test_image_run_locally(podman: Podman, image: str, tmp_path: Path) -> None:  # noqa: F811
    """image.md's podman sequence: ready, the app's calls reach the upstream, stop exits 0."""
    config, block = walkthrough(DOC, "image-run-locally")
    assert config.file_name == "./sidecar/sidecar.yaml", config.text
    commands = shell_commands(block)
    assert f" sidecar:{VERSION}" in commands[0], f"the doc runs another tag: {commands[0]}"
    session = DocSession(tmp_path / "work", PortMap([15030]))
    name = f"sidecar-doc-{os.getpid()}"
    podman.names.append(name)  # removed at the end of the session, whatever happens here
    session.env["CONTAINERS_CONF"] = str(podman.conf)
    app = "import urllib.request as u; print(u.urlopen('{}').read())".format(
        "http://127.0.0.1:15001/payments/from-my-app"
    )
    session.command_rewrites += [
        (r"-p 127\.0\.0\.1:(\d+):\1\b", "--network host"),
        (r"(--name |podman exec |podman stop -t \d+ |container:)sidecar\b", rf"\g<1>{name}"),
        (r"\bmy-app\s*$", f'--entrypoint python sidecar:{VERSION} -c "{app}"'),
    ]
    metrics = f"http://127.0.0.1:{session.ports[15030]}"
    try:
        with serving(FakeUpstream(_payments)) as payments:
            shown = "http://host.containers.internal:8080"
            assert shown in config.text, config.text
            text = session.ports.rewrite(config.text.replace(shown, payments.url))
            data = yaml.safe_load(text.replace("0.0.0.0:", "127.0.0.1:"))
            for listener, port in DEFAULT_LISTENERS.items():
                section = data.setdefault(listener, {})
                section.setdefault("address", f"127.0.0.1:{session.ports[port]}")
            conf = session.write("sidecar/sidecar.yaml", yaml.safe_dump(data))
            conf.parent.chmod(0o755)  # read by the container's user, uid 65532
            conf.chmod(0o644)
            for command in commands:
                if command.startswith("curl"):
                    wait_ready(podman, name, answers_ready(metrics))
                code, out = session.shell(command, timeout=60)
                assert code == 0, f"`{command}` exited {code}:\n{out}"
                _check(command, out, podman, name)
            assert [r.path_qs for r in payments.requests] == ["/health", "/from-my-app"]
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        session.close()


def _check(command: str, out: str, engine: Podman, name: str) -> None:
    """What the doc says ``command`` does (its comment), or what it is for, holds."""
    comment = re.search(r"#\s*(.*)$", command)
    if command.startswith("podman run -d"):
        assert engine.inspect(name)["HostConfig"]["ReadonlyRootfs"] is True
    elif command.startswith("curl"):
        assert comment, command
        assert json.loads(out) == json.loads(comment[1]), out
    elif command.startswith("podman exec"):
        assert out == f"b'{ANSWER}'\n", out  # the upstream's answer, through the egress port
    elif "--network container:" in command:
        assert out == f"b'{ANSWER}'\n", out
    elif command.startswith("podman stop"):
        exits = re.search(r"exits (\d+)", comment[1] if comment else "")
        assert exits, command
        assert engine.inspect(name)["State"]["ExitCode"] == int(exits[1]), engine.logs(name)
        assert '"msg": "draining"' in engine.logs(name)
    else:
        raise AssertionError(f"a command no rule here checks: {command}")
