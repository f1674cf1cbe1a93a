"""`sidecar check` on the plugin's section: each problem at its file and key path, exit 2,
never echoing a secret. Needs the plugin installed (found by its entry point). The checks are
started together, once, since each is a whole sidecar process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inbound import Pki, ldap_section, secret_file, sidecar_config

SIDECAR = str(Path(sys.executable).with_name("sidecar"))

CASES: dict[str, dict[str, Any]] = {
    "wrong": {"usr": {}, "bind_password": "hunter2-inline", "groups": {"source": "ad"}},
    "secret": {"bind_password": {"file": "/nonexistent/pw"}},
    "route": {"routes": {"admn": {}}},
    "valid": {},
}


@pytest.fixture(scope="module")
def checked(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Each case's config file and its `sidecar check` result."""
    root = tmp_path_factory.mktemp("check")
    running = {}
    for name, changes in CASES.items():
        ldap = ldap_section("ldap://127.0.0.1:9", secret_file(root), **changes)
        path = root / f"{name}.yaml"
        path.write_text(json.dumps(sidecar_config(pki, 8080, ldap)))  # JSON is YAML too
        running[name] = (
            path,
            subprocess.Popen(  # noqa: S603 - the sidecar installed beside this Python
                [SIDECAR, "check", "-c", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    results = {}
    for name, (path, process) in running.items():
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate(timeout=10)
        results[name] = (
            path,
            subprocess.CompletedProcess(process.args, process.returncode, out, err),
        )
    return results


def test_sidecar_check_names_each_wrong_option_at_its_key_path(
    checked: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
) -> None:
    """A misspelt key, an inline password and an unknown group source are each reported as
    `file: key.path: reason` in one pass (exit 2), and the inline password is not repeated."""
    file, done = checked["wrong"]
    assert done.returncode == 2, done.stderr
    assert f"{file}: plugins.ldap.usr: unknown key" in done.stderr
    assert f"{file}: plugins.ldap.bind_password: a secret is given by reference" in done.stderr
    assert f"{file}: plugins.ldap.groups.source: " in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("secret", "plugins.ldap.bind_password: "),
        ("route", "plugins.ldap.routes.admn: no inbound route has this name"),
    ],
)
def test_sidecar_check_finds_what_only_start_up_would(
    checked: dict[str, tuple[Path, subprocess.CompletedProcess[str]]], case: str, where: str
) -> None:
    """An unreadable password file, or a rule for an inbound route that does not exist (it
    would silently fall back to the default rule), stops the check at its key path."""
    file, done = checked[case]
    assert done.returncode == 2, done.stderr
    assert f"{file}: {where}" in done.stderr


def test_sidecar_check_accepts_a_complete_section(
    checked: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
) -> None:
    """A complete section passes the check without connecting to the directory."""
    _, done = checked["valid"]
    assert done.returncode == 0, done.stderr
