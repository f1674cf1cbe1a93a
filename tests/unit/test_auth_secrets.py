"""Secret values by reference: read once, re-read when their file changes, never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sidecar.config.secrets import SecretValue, UnusableSecret
from sidecar.config.types import SecretRef, header_value_problem


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def k8s_secret_volume(root: Path, key: str, value: str) -> Path:
    """The layout the kubelet writes: ``key -> ..data/key``, ``..data -> ..<timestamp>``."""
    version = root / "..2024_01_01_00_00_00.1"
    version.mkdir(parents=True)
    (version / key).write_text(value + "\n")
    (root / "..data").symlink_to(version.name)
    (root / key).symlink_to(f"..data/{key}")
    return root / key


def k8s_rotate(root: Path, key: str, value: str, n: int) -> None:
    """The kubelet's atomic update: a new directory, then ``..data`` swapped by a rename."""
    version = root / f"..2024_01_01_00_00_00.{n}"
    version.mkdir()
    (version / key).write_text(value + "\n")
    (root / "..data_tmp").symlink_to(version.name)
    os.replace(root / "..data_tmp", root / "..data")


def test_an_env_secret_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable cannot change under a running process: it is read at start-up only."""
    monkeypatch.setenv("TOKEN_A", "first")
    value = SecretValue(SecretRef(env="TOKEN_A"), "auth.token")
    monkeypatch.setenv("TOKEN_A", "second")
    assert value.get() == "first" and value.fresh() == "first"


def test_a_kubernetes_secret_rotation_is_seen_without_a_restart(tmp_path: Path) -> None:
    """The ..data symlink swap of a Secret volume is picked up within the check interval."""
    path = k8s_secret_volume(tmp_path, "token", "old-value")
    clock = Clock()
    value = SecretValue(SecretRef(file=str(path)), "auth.token", clock=clock)
    assert value.get() == "old-value"
    k8s_rotate(tmp_path, "token", "new-value", 2)
    clock.now += 0.5
    assert value.get() == "old-value"  # checked at most once a second
    clock.now += 0.6
    assert value.get() == "new-value"


def test_fresh_checks_the_file_now(tmp_path: Path) -> None:
    """A rare, important use (a token fetch) sees a rotated secret at once."""
    path = k8s_secret_volume(tmp_path, "secret", "v1")
    value = SecretValue(SecretRef(file=str(path)), "auth.client_secret", clock=Clock())
    k8s_rotate(tmp_path, "secret", "v2", 2)
    assert value.fresh() == "v2"


def test_an_unusable_rotation_keeps_the_last_good_value_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file caught missing or empty mid-rotation never turns a working credential off."""
    path = tmp_path / "token"
    path.write_text("good-one\n")
    clock = Clock()
    value = SecretValue(SecretRef(file=str(path)), "auth.token", clock=clock)
    path.write_text("")
    with caplog.at_level(logging.WARNING, logger="sidecar.auth"):
        for _ in range(3):
            clock.now += 2
            assert value.get() == "good-one"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert str(path) in logged and "good-one" not in logged
    path.write_text("next-one\n")
    clock.now += 2
    assert value.get() == "next-one"


def test_a_rotated_value_that_cannot_be_a_header_is_refused_without_showing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new value with CR/LF (which would split the request) is not used, and not logged."""
    path = tmp_path / "key"
    path.write_text("clean\n")
    clock = Clock()
    value = SecretValue(
        SecretRef(file=str(path)), "auth.key", check=header_value_problem, clock=clock
    )
    path.write_text("evil\r\nx-injected: 1")
    clock.now += 2
    with caplog.at_level(logging.WARNING, logger="sidecar.auth"):
        assert value.get() == "clean"
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "evil" not in logged and "control" in logged


def test_an_unreadable_secret_names_its_key_path_and_reference_only(tmp_path: Path) -> None:
    """Start-up stops at upstreams.<u>.auth.<key>, naming the reference, never a value."""
    with pytest.raises(UnusableSecret) as caught:
        SecretValue(SecretRef(file=str(tmp_path / "nope")), "auth.client_secret")
    assert caught.value.key_path == "auth.client_secret"
    assert str(tmp_path / "nope") in str(caught.value)
    with pytest.raises(UnusableSecret, match="is not set"):
        SecretValue(SecretRef(env="SURELY_NOT_SET_ANYWHERE_42"), "auth.key")
