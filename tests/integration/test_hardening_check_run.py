"""`sidecar check` refuses every config `sidecar run` refuses, in the same words, secrets unshown.

Each config here was once passed by `check` and refused by `run`: its problem only shows when
start-up composes the routes (a secret read where it goes, a CA bundle, a gRPC channel, the
tracing settings of the environment). Both commands run as a user runs them (subprocesses).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SIDECAR = str(Path(sys.executable).with_name("sidecar"))
SECRET = "s3cr3t-Hard3n-4b1c"  # distinctive: grep-able in any output
SPLIT = f"{SECRET}\r\nx-injected: yes"  # a value that would split the request head
CRLF = "contains a control or non-latin-1 character (CR, LF and NUL are never allowed)"

HEAD = """\
admin: {address: "127.0.0.1:0"}
http: {address: "127.0.0.1:0"}
grpc: {address: "127.0.0.1:0"}
"""

# name -> (config after HEAD, extra environment, the problem line after "<file>: ")
CASES: dict[str, tuple[str, dict[str, str], str]] = {
    "api_key from a file": (
        """\
upstreams:
  pay:
    url: http://127.0.0.1:9
    auth: {type: api_key, header: x-api-key, key: {file: KEYFILE}}
""",
        {},
        f"upstreams.pay.auth.key: the secret {{file: KEYFILE}} {CRLF}",
    ),
    "bearer from env": (
        """\
upstreams:
  pay:
    url: http://127.0.0.1:9
    auth: {type: bearer, token: {env: HARDENING_TOKEN}}
""",
        {"HARDENING_TOKEN": SPLIT},
        f"upstreams.pay.auth.token: the secret {{env: HARDENING_TOKEN}} {CRLF}",
    ),
    "oauth2 CA bundle": (
        """\
upstreams:
  pay:
    url: http://127.0.0.1:9
    auth:
      type: oauth2_client_credentials
      token_url: http://127.0.0.1:9/token
      client_id: shop
      client_secret: {env: HARDENING_TOKEN}
      ca: KEYFILE
""",
        {"HARDENING_TOKEN": SECRET},
        "upstreams.pay.auth.ca: cannot load the CA bundle",
    ),
    "gRPC services on an http upstream": (
        """\
upstreams:
  pay:
    url: http://127.0.0.1:9
    services: [pay.v1.Payments]
""",
        {},
        "upstreams.pay.services: gRPC services are routed to upstreams with adapter: grpc; "
        "this one uses 'http'",
    ),
}


def sidecar(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [SIDECAR, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,  # a run that was not refused would serve: the test then fails, bounded
        check=False,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_and_run_refuse_the_same_config_in_the_same_words(tmp_path: Path, case: str) -> None:
    """A CI gate on `sidecar check` never passes a file `sidecar run` then refuses."""
    body, env, problem = CASES[case]
    keyfile = tmp_path / "key"
    keyfile.write_text(SPLIT + "\n")
    config = tmp_path / "sidecar.yaml"
    config.write_text(HEAD + body.replace("KEYFILE", str(keyfile)))
    expected = f"{config}: {problem.replace('KEYFILE', str(keyfile))}"
    outputs = []
    for command in ("check", "run"):
        r = sidecar(command, "-c", str(config), cwd=tmp_path, env=env)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert [line for line in lines if line.startswith(f"{config}: ")] == lines[:1]
        assert lines[0].startswith(expected), (command, lines)
        assert SECRET not in r.stdout + r.stderr
        outputs.append(lines[0])
    assert outputs[0] == outputs[1]


def test_check_and_run_refuse_tracing_settings_from_the_environment(tmp_path: Path) -> None:
    """An OTEL_* variable the tracing start-up refuses is refused by check too, exit 2."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(HEAD + "telemetry: {tracing: {protocol: grpc}}\n")
    env = {"OTEL_TRACES_SAMPLER": "sometimes"}
    results = [sidecar(c, "-c", str(config), cwd=tmp_path, env=env) for c in ("check", "run")]
    for r in results:
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stderr.splitlines()[0].startswith(
            "environment: OTEL_TRACES_SAMPLER: 'sometimes': expected one of "
        )
    assert results[0].stderr.splitlines()[0] == results[1].stderr.splitlines()[0]


def test_check_accepts_the_same_upstreams_once_the_secrets_are_usable(tmp_path: Path) -> None:
    """The preflight reads secrets and builds providers but calls nobody: a good file is ok."""
    keyfile = tmp_path / "key"
    keyfile.write_text(SECRET + "\n")
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        HEAD
        + f"""\
ratelimit_backends:
  shared: {{type: redis, url: "redis://127.0.0.1:9/0"}}
upstreams:
  pay:
    url: http://127.0.0.1:9
    auth: {{type: api_key, header: x-api-key, key: {{file: {keyfile}}}}}
    global_rate_limit: {{backend: shared, rate: 10/min}}
  idp:
    url: http://127.0.0.1:9
    auth: {{type: oauth2_client_credentials, token_url: "http://127.0.0.1:9/token",
            client_id: shop, client_secret: {{env: HARDENING_TOKEN}}}}
"""
    )
    r = sidecar("check", "-c", str(config), cwd=tmp_path, env={"HARDENING_TOKEN": SECRET})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{config}: ok (2 upstreams, 0 routes)")
    assert SECRET not in r.stdout + r.stderr
