"""Choosing the queue in the config, without sockets: `sidecar check` on the webhooks options."""

from __future__ import annotations

from pathlib import Path

from webhooks_support import new_secret, run_check

ENDPOINT = {"url": "http://127.0.0.1:9/x", "events": ["order.created"], "secrets": [{"env": "WH"}]}


def check(tmp_path: Path, queue: dict[str, object], env: dict[str, str]) -> tuple[int, str]:
    options = {**queue, "endpoints": {"billing": ENDPOINT}}
    return run_check(
        tmp_path, {"upstreams": {"hooks": {"adapter": "webhooks", "options": options}}}, env
    )


def test_the_queue_is_a_directory_or_redis_and_exactly_one(tmp_path: Path) -> None:
    """A Redis queue passes `sidecar check` without Redis running; both queues at once are refused,
    and an unusable Redis password reference is named at its key path, never its value."""
    env = {"WH": new_secret()}
    redis = {"url": "redis://127.0.0.1:9/0", "password": {"env": "REDIS_PW"}}
    code, out = check(tmp_path, {"redis": redis}, {**env, "REDIS_PW": "s3cret-pw"})
    assert code == 0, out
    both = {"store_dir": str(tmp_path / "q"), "redis": redis}
    code, out = check(tmp_path, both, {**env, "REDIS_PW": "s3cret-pw"})
    assert code == 2 and "exactly one of store_dir or redis" in out
    code, out = check(tmp_path, {"redis": redis}, env)
    assert code == 2 and "upstreams.hooks.options.redis.password: the secret {env: REDIS_PW}" in out
    inline = {"redis": {**redis, "password": "s3cret-pw"}}
    code, out = check(tmp_path, inline, env)
    assert code == 2 and "redis.password: a secret is given by reference" in out
    assert "s3cret-pw" not in out
