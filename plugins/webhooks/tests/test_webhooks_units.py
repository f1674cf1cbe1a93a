"""The webhooks plugin without sockets: signatures against the independent standardwebhooks
library, the retry schedule, the durable store's files, and what ``sidecar check`` reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sidecar_webhooks
from sidecar_webhooks.config import RetryPolicy, WebhooksConfig, secret_problem
from sidecar_webhooks.signing import secret_key, sign_headers
from sidecar_webhooks.store import Delivery, Store
from sidecar_webhooks.worker import parse_retry_after, retry_delay
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from webhooks_support import new_secret, run_check

from sidecar import API_VERSION


def test_our_signatures_verify_with_standardwebhooks() -> None:
    """A delivery signed with two secrets verifies with each of them alone, and not with a third."""
    first, second = new_secret(), new_secret()
    body = b'{"type": "order.created", "data": {"\\u00e9": 1}}'
    now = int(datetime.now(UTC).timestamp())
    headers = sign_headers([secret_key(first), secret_key(second)], "msg_1", now, body)
    for secret in (first, second):
        assert Webhook(secret).verify(body, headers)["type"] == "order.created"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_secrets_must_be_standard_webhooks_secrets() -> None:
    """Only whsec_ + base64 of 24..64 bytes is a secret; the reason never shows the value."""
    assert secret_problem(new_secret()) is None
    for bad in ("hunter2hunter2", "whsec_not base64!", "whsec_" + "QUJD"):
        problem = secret_problem(bad)
        assert problem is not None and bad not in problem


def test_the_retry_schedule_doubles_with_jitter_and_is_capped() -> None:
    """Delays double from first_delay within ±jitter, never pass max_delay, and Retry-After wins."""
    policy = RetryPolicy(attempts=10, first_delay=1.0, max_delay=10.0, jitter=0.2)
    for n, base in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)):
        for _ in range(50):
            assert base * 0.8 <= retry_delay(policy, n, None) <= min(base * 1.2, 10.0)
    assert all(retry_delay(policy, 9, None) <= 10.0 for _ in range(50))
    assert retry_delay(policy, 1, 3.0) == 3.0
    assert retry_delay(policy, 1, 3600.0) == 10.0
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0
    assert parse_retry_after("soon", 0.0) is None


def test_the_store_keeps_deliveries_across_instances(tmp_path: Path) -> None:
    """What was saved is loaded by a new Store (a restart); dead moves; a cut write is dropped,
    and so is a body no delivery needs."""
    store = Store(tmp_path)
    a = Delivery("msg_a", "order.created", "ep", 6, "application/json", 1.0, 2.0)
    b = Delivery("msg_b", "order.created", "ep", 2, "application/json", 1.0, 2.0)
    store.add(b"\x00\xffbody", [a])
    store.add(b"{}", [b])
    b.state = "dead"
    store.save([b])
    (tmp_path / "tmp" / "msg_c.ep.cut").write_bytes(b"{half")
    (tmp_path / "bodies" / "msg_orphan").write_bytes(b"accept cut before its deliveries")
    loaded = {d.key: d for d in Store(tmp_path).load()}
    assert loaded == {"msg_a.ep": a, "msg_b.ep": b}
    assert loaded["msg_b.ep"].state == "dead"
    assert store.read_body("msg_a") == b"\x00\xffbody"
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "bodies").iterdir()) == ["msg_a", "msg_b"]
    store.remove(a)
    assert [d.key for d in Store(tmp_path).load()] == ["msg_b.ep"]


def check(tmp_path: Path, options: dict[str, object], env: dict[str, str]) -> tuple[int, str]:
    config = {"upstreams": {"hooks": {"adapter": "webhooks", "options": options}}}
    return run_check(tmp_path, config, env)


def test_sidecar_check_names_the_file_key_and_reason(tmp_path: Path) -> None:
    """Unusable webhooks settings fail `sidecar check` with file, key path and reason, and the
    secret's value never appears."""
    ep = {"url": "http://127.0.0.1:9/x", "events": ["order.created"], "secrets": [{"env": "WH"}]}
    options = {"store_dir": str(tmp_path / "q"), "endpoints": {"billing": ep}}
    code, out = check(tmp_path, options, {"WH": new_secret()})
    assert code == 0, out
    code, out = check(tmp_path, options, {"WH": "not-a-whsec-value"})
    assert code == 2
    assert "sidecar.yaml: upstreams.hooks.options.endpoints.billing.secrets.0:" in out
    assert "must start with whsec_" in out and "not-a-whsec-value" not in out
    code, out = check(tmp_path, options, {})
    assert code == 2 and "billing.secrets.0: the secret {env: WH} is missing" in out
    inline = {**options, "endpoints": {"billing": {**ep, "secrets": ["whsec_inline"]}}}
    code, out = check(tmp_path, inline, {"WH": new_secret()})
    assert code == 2 and "upstreams.hooks.options.endpoints.billing.secrets: a secret is" in out
    assert "never inline" in out and "whsec_inline" not in out
    (tmp_path / "a-file").write_text("")
    not_dir = {**options, "store_dir": str(tmp_path / "a-file")}
    code, out = check(tmp_path, not_dir, {"WH": new_secret()})
    assert code == 2 and "upstreams.hooks.options.store_dir: " in out
    assert "a-file exists and is not a directory" in out
    by_ref = {**options, "endpoints": {"billing": {**ep, "url": {"env": "URL"}}}}
    code, out = check(tmp_path, by_ref, {"WH": new_secret(), "URL": "ftp://h/T0KEN"})
    assert code == 2 and "upstreams.hooks.options.endpoints.billing.url: the secret" in out
    assert "is not an http:// or https:// URL" in out and "T0KEN" not in out
    typo = {**options, "endpoints": {"billing": {**ep, "events": ["order created"]}}}
    code, out = check(tmp_path, typo, {"WH": new_secret()})
    assert code == 2 and "upstreams.hooks.options.endpoints.billing.events" in out
    assert "'order created' is no event type" in out


def test_the_plugin_registers_its_parts_and_no_filter_of_its_own(
    plugin_host: Callable[..., Any],
) -> None:
    """The host finds the adapter and the section; inbound webhooks are the core verify_hmac's
    (scheme standard-webhooks), so the plugin adds no filter."""
    registries = plugin_host(sidecar_webhooks).registries
    assert registries.config["webhooks"] is WebhooksConfig
    names = [r.name for r in registries.filters.ordered()]
    assert "verify_hmac" in names and "verify_webhook" not in names
    assert str(sidecar_webhooks.SIDECAR_API) == API_VERSION.split(".")[0]
