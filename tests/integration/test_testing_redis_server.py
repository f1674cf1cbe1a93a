"""``sidecar.testing.RedisServer``, the private redis-server plugin authors' tests start."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.testing import RedisServer


def test_a_machine_without_redis_server_fails_the_test_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No binary on PATH: constructing it raises, saying what to install (a test never skips)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="redis-server is not installed"):
        RedisServer()


def test_it_serves_on_its_url_and_leaves_nothing_behind() -> None:
    """Inside the block it answers on 127.0.0.1 at ``url``; after it, the process and its
    directory are gone."""
    with RedisServer() as redis:
        assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
        assert redis.command("SET", "k", "v") == b"+OK\r\n"
        assert redis.command("GET", "k") == b"$1\r\nv\r\n"
        proc = redis.proc
    assert proc is not None and proc.poll() is not None
    assert not redis.answers()
    assert not redis.dir.exists()


@pytest.mark.parametrize(
    ("persistent", "after_restart"), [(False, b"$-1\r\n"), (True, b"$1\r\nv\r\n")]
)
def test_killed_and_started_again_it_comes_back_on_the_same_port(
    persistent: bool, after_restart: bytes
) -> None:
    """kill() makes it down, start() brings it back on the same port: empty, or with its data
    when persistent (an append-only file fsynced at every write)."""
    redis = RedisServer(persistent=persistent).start()
    try:
        port = redis.port
        redis.command("SET", "k", "v")
        redis.kill()
        assert not redis.answers()
        redis.start()
        assert redis.port == port
        assert redis.command("GET", "k") == after_restart
    finally:
        redis.stop()
