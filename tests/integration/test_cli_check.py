"""`sidecar check -c FILE` and `sidecar run -c FILE` as a user runs them: exit codes and output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SIDECAR = str(Path(sys.executable).with_name("sidecar"))
SECRET = "s3cr3t-Tok3n-9f8e7d"  # distinctive: grep-able in any output

BAD = """\
http: {adress: 127.0.0.1:15001}
upstreams:
  payments:
    url: https://payments.internal:8443
    timeout: fast
routes:
  - {match: {path_prefix: /pay}, upstream: paymnts}
"""
BAD_PROBLEMS = [
    "sidecar.yaml: http.adress: unknown key (did you mean 'address'?)",
    'sidecar.yaml: upstreams.payments.timeout: expected a duration like "2s", got "fast"',
    'sidecar.yaml: routes[0].upstream: no upstream named "paymnts" (did you mean "payments"?)',
]

# A third-party plugin without pip: a module and its dist-info (with the ``sidecar`` entry point)
# on PYTHONPATH are found by importlib.metadata exactly like an installed distribution.
DEMO_PLUGIN = """
from pydantic import BaseModel, ConfigDict
from sidecar import hookimpl

class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: int = 3

@hookimpl
def sidecar_declare_config(registry):
    registry.add("demo", DemoConfig)
"""


def sidecar(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIDECAR, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def demo_plugin_path(tmp_path: Path) -> str:
    root = tmp_path / "site"
    (root / "sidecar_demo_cfg.py").parent.mkdir(parents=True)
    (root / "sidecar_demo_cfg.py").write_text(DEMO_PLUGIN)
    info = root / "sidecar_demo_cfg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sidecar-demo-cfg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sidecar]\ndemo = sidecar_demo_cfg\n")
    return str(root)


def test_check_accepts_a_valid_file_with_one_line(tmp_path: Path) -> None:
    """A CI step can gate on `sidecar check`: exit 0 and a single "ok" line."""
    (tmp_path / "sidecar.yaml").write_text(
        "upstreams:\n  payments: {url: 'https://payments.internal:8443', timeout: 2s}\n"
        "routes: [{match: {path_prefix: /pay}, upstream: payments}]\n"
    )
    r = sidecar("check", "-c", "sidecar.yaml", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (
        0,
        "sidecar.yaml: ok (1 upstream, 1 route)\n",
        "",
    )


def test_check_refuses_a_bad_file_with_every_problem(tmp_path: Path) -> None:
    """Exit 2 and one `file: key.path: reason` line per problem, all of them in one run."""
    (tmp_path / "sidecar.yaml").write_text(BAD)
    r = sidecar("check", "-c", "sidecar.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == BAD_PROBLEMS
    assert r.stdout == ""


def test_run_refuses_a_bad_file_exactly_like_check(tmp_path: Path) -> None:
    """`sidecar run` never starts on a bad file and says why in the same words as check."""
    (tmp_path / "sidecar.yaml").write_text(BAD)
    r = sidecar("run", "-c", "sidecar.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == BAD_PROBLEMS


def test_check_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    """A wrong path or broken YAML is a refused config (exit 2), not a traceback."""
    r = sidecar("check", "-c", "missing.yaml", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (
        2,
        "missing.yaml: cannot read the file: No such file or directory\n",
    )
    (tmp_path / "broken.yaml").write_text("upstreams:\n  a: [1\n")
    r = sidecar("check", "-c", "broken.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("broken.yaml: line 3, column 1: not valid YAML: ")


def test_check_validates_plugin_sections_with_the_plugins_model(
    tmp_path: Path, demo_plugin_path: str
) -> None:
    """A typo in a third-party plugin's section fails `check` with its key path."""
    (tmp_path / "sidecar.yaml").write_text(
        "http: {max_headers: 0}\nplugins:\n  demo: {threshold: high, treshold: 2}\n"
    )
    env = {"PYTHONPATH": demo_plugin_path}
    r = sidecar("check", "-c", "sidecar.yaml", cwd=tmp_path, env=env)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "sidecar.yaml: http.max_headers: must be at least 1, got 0",
        'sidecar.yaml: plugins.demo.threshold: expected a whole number, got "high"',
        "sidecar.yaml: plugins.demo.treshold: unknown key (did you mean 'threshold'?)",
    ]
    (tmp_path / "sidecar.yaml").write_text("plugins:\n  demo: {threshold: 5}\n")
    r = sidecar("check", "-c", "sidecar.yaml", cwd=tmp_path, env=env)
    assert (r.returncode, r.stderr) == (0, "")
    # disabled, the plugin's section may stay in the file: nobody reads it, nobody judges it
    (tmp_path / "sidecar.yaml").write_text("plugins: {disabled: [demo], demo: {threshold: x}}\n")
    r = sidecar("check", "-c", "sidecar.yaml", cwd=tmp_path, env=env)
    assert (r.returncode, r.stderr) == (0, "")


def test_secret_values_never_appear_in_check_or_run_output(tmp_path: Path) -> None:
    """A secret that is fine, or wrong, is only ever named by its reference."""
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            upstreams:
              payments:
                url: http://127.0.0.1:9
                request_headers:
                  authorization: {{file: {token}}}
                  x-api-key: {{env: SIDECAR_TEST_KEY}}
            """
        )
    )
    env = {"SIDECAR_TEST_KEY": SECRET}
    ok = sidecar("check", "-c", str(config), cwd=tmp_path, env=env)
    assert ok.returncode == 0
    # the same secrets made unusable: a line break would split the request head
    token.write_text(f"{SECRET}\nx-injected: yes\n")
    env["SIDECAR_TEST_KEY"] = f"{SECRET}\r\n"
    refused = [
        sidecar("check", "-c", str(config), cwd=tmp_path, env=env),
        sidecar("run", "-c", str(config), cwd=tmp_path, env=env),
    ]
    for r in refused:
        assert r.returncode == 2
        assert r.stderr.splitlines() == [
            f"{config}: upstreams.payments.request_headers.authorization: the secret "
            f"{{file: {token}}} contains a control or non-latin-1 character "
            "(CR, LF and NUL are never allowed)",
            f"{config}: upstreams.payments.request_headers.x-api-key: the secret "
            "{env: SIDECAR_TEST_KEY} contains a control or non-latin-1 character "
            "(CR, LF and NUL are never allowed)",
        ]
    for r in [ok, *refused]:
        assert SECRET not in r.stdout + r.stderr
