"""Reloads that would take every route away are refused: an empty file, a file that lost its
upstreams, a file caught half-written. Only an explicit ``upstreams: {}`` empties a sidecar."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from sidecar.testing import FakeUpstream, SidecarProcess, running_sidecar

EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}


def echo_config(version: str) -> dict[str, Any]:
    return {
        # the stop drains at once: the wait for the app to go quiet is test_pod_lifecycle's
        "shutdown": {"app_quiet_period": "0s"},
        "upstreams": {"echo": {"adapter": "echo", "request_headers": {"x-config": version}}},
    }


def wait_for_metric(p: SidecarProcess, result: str, count: float, limit: float = 15.0) -> None:
    """Until ``sidecar_config_reloads_total{result}`` reaches ``count`` (bounded)."""
    deadline = time.monotonic() + limit
    while metric(p, result) < count:
        assert time.monotonic() < deadline, f"no {count:g} {result} reload(s) within {limit}s"
        time.sleep(0.05)


def metric(p: SidecarProcess, result: str) -> float:
    text = httpx.get(f"{p.admin_url}/metrics", timeout=5).text
    prefix = f'sidecar_config_reloads_total{{result="{result}"}} '
    found = [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]
    return float(found[0]) if found else 0.0


async def test_an_emptied_file_is_refused_and_the_old_config_keeps_serving(
    tmp_path: Path,
) -> None:
    """Truncating the config (`> sidecar.yaml`) must not turn every call into a 404."""
    path = tmp_path / "sidecar.yaml"
    async with FakeUpstream() as up:
        path.write_text(yaml.safe_dump({**EPHEMERAL, "upstreams": {"pay": {"url": up.url}}}))
        async with running_sidecar(path.read_text(), config_path=str(path)) as s:
            for empty in ("", "\n\n", "# all commented out\n#upstreams: {}\n"):
                path.write_text(empty)
                result = await s.reload_result()
                assert not result.applied
                assert result.problems == (
                    f"{path}: the file is empty (nothing but blanks or comments); write `{{}}` "
                    "to run on the defaults with no upstreams",
                )
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{s.http_port}/pay/still")
            assert (r.status_code, r.text) == (200, "ok")


async def test_a_reload_that_removes_every_upstream_needs_an_explicit_empty_mapping(
    tmp_path: Path,
) -> None:
    """A file that lost its `upstreams:` is refused; `upstreams: {}` written out is obeyed."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({**EPHEMERAL, **echo_config("v1")}))
    async with running_sidecar(path.read_text(), config_path=str(path)) as s:
        for lost in ({}, {"upstreams": None}):
            path.write_text(yaml.safe_dump({**EPHEMERAL, **lost}))
            result = await s.reload_result()
            assert result.problems == (
                f"{path}: upstreams: the new config has no upstreams and would remove all 1 "
                "(every call would get 404); write `upstreams: {}` to mean it",
            )
            assert list(s.config.upstreams) == ["echo"]
        path.write_text(yaml.safe_dump({**EPHEMERAL, "upstreams": {}}))
        assert (await s.reload_result()).applied
        assert s.config.upstreams == {}
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{s.http_port}/echo/")
        assert r.status_code == 404 and r.headers["x-sidecar-error"] == "no_route"


def test_a_writer_that_truncates_then_pauses_never_takes_the_routes_away() -> None:
    """Rewriting the file in place with pauses: calls keep their answers throughout."""
    with SidecarProcess(echo_config("v1")) as p:
        path = p.config_path
        full = yaml.safe_dump({**EPHEMERAL, **echo_config("v2")})
        stop = threading.Event()
        answers: list[int] = []

        def call_all_the_time() -> None:
            with httpx.Client() as client:
                while not stop.is_set():
                    answers.append(client.get(f"{p.http_url}/echo/", timeout=5).status_code)

        caller = threading.Thread(target=call_all_the_time)
        caller.start()
        try:
            # truncate, then write the file in two halves, pausing each time until the watcher
            # has read that state and refused it: the empty file, then the half file
            half = full.index("upstreams:")
            path.write_text("")
            wait_for_metric(p, "refused", 1)
            with path.open("a") as f:
                f.write(full[:half])
            wait_for_metric(p, "refused", 2)
            with path.open("a") as f:
                f.write(full[half:])
            wait_for_metric(p, "ok", 1)
        finally:
            stop.set()
            caller.join(timeout=10)
        r = httpx.get(f"{p.http_url}/echo/", timeout=5)
        assert r.json()["headers"]["x-config"] == "v2"
        assert answers and set(answers) == {200}, sorted(set(answers))
        assert metric(p, "refused") == 2  # the empty and the half-written state, each once
        assert p.terminate() == 0
