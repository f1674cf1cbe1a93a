"""Operating the gateway: ``sidecar check`` validates its config (file, key path, reason), the
providers' keys never reach logs or error bodies, and tokens, cost and failovers are metrics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sidecar_llm
import yaml
from gateway import OPENAI_KEY_ENV, gateway_config, group, openai_client, openai_provider, user
from prometheus_client.parser import text_string_to_metric_families
from providers import OPENAI_TEST_KEY, Fail, FakeOpenAI, Reply

SIDECAR = str(Path(sys.executable).parent / "sidecar")

BAD = """\
upstreams:
  llm:
    adapter: llm
    options:
      providers:
        oa: {kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: {env: LLM_CHECK_NO_SUCH_KEY}}
      groups:
        gpt-4o:
          deployments: [{provider: openai, model: gpt-4o}]
          fallbacks: [claude]
"""


def check(tmp_path: Path, text: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    """``sidecar check`` of ``text`` as ``sidecar.yaml``, with ``env_vars`` set."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "LLM_CHECK_NO_SUCH_KEY"} | env_vars
    return subprocess.run(  # noqa: S603 - the venv's own sidecar
        [SIDECAR, "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_sidecar_check_names_file_key_path_and_reason(tmp_path: Path) -> None:
    """A wrong provider name, a missing fallback group, a missing key and an unknown limits
    backend are each reported as ``file: key.path: reason`` with exit code 2."""
    result = check(tmp_path, BAD)
    assert result.returncode == 2, result.stderr
    where = f"{tmp_path / 'sidecar.yaml'}: upstreams.llm.options"
    assert f"{where}: groups.gpt-4o.deployments[0].provider: no provider named 'openai'" in (
        result.stderr
    )
    assert "groups.gpt-4o.fallbacks: no group named 'claude'" in result.stderr
    fixed = BAD.replace("provider: openai", "provider: oa").replace("fallbacks: [claude]", "")
    fixed += "          limits: {backend: shared, requests_per_minute: 5}\n"
    result = check(tmp_path, fixed)
    assert result.returncode == 2, result.stderr
    assert f"{where}.providers.oa.api_key: the secret {{env: LLM_CHECK_NO_SUCH_KEY}}" in (
        result.stderr
    )
    result = check(tmp_path, fixed, LLM_CHECK_NO_SUCH_KEY="set")
    assert result.returncode == 2, result.stderr
    assert f"{where}.groups.gpt-4o.limits.backend: no backend named 'shared'" in result.stderr


def test_sidecar_check_never_repeats_a_key_written_inline(tmp_path: Path) -> None:
    """A key written in the file instead of by reference is refused without echoing the key."""
    inline = "sk-inline-llm-key-4242"
    result = check(tmp_path, BAD.replace("{env: LLM_CHECK_NO_SUCH_KEY}", inline))
    assert result.returncode == 2, result.stderr
    assert "upstreams.llm.options.providers.oa.api_key: a key is given by reference" in (
        result.stderr
    )
    assert inline not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "heading", ["OpenAI only", "Anthropic only", "OpenAI with Anthropic as failover"]
)
def test_sidecar_check_accepts_the_documented_configs(tmp_path: Path, heading: str) -> None:
    """Each complete config of docs/llm-gateway.md passes the check as written."""
    doc = Path(__file__).resolve().parents[3] / "docs" / "llm-gateway.md"
    text = doc.read_text()
    start = text.index("```yaml", text.index(f"## {heading}\n")) + len("```yaml")
    config = text[start : text.index("```", start)]
    assert yaml.safe_load(config)["upstreams"]["llm"]["adapter"] == "llm"
    key_file = tmp_path / "anthropic-api-key"
    key_file.write_text("sk-ant-check\n")
    config = config.replace("/run/secrets/anthropic-api-key", str(key_file))
    result = check(tmp_path, config, OPENAI_API_KEY="sk-check", ANTHROPIC_API_KEY="sk-check")
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("provider_keys")
async def test_keys_never_reach_logs_or_error_bodies(
    sidecar_factory: Any, start_fake_provider: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider refusing the sidecar's key: the app's error and every log line omit the key."""
    picky = start_fake_provider(FakeOpenAI(api_key="sk-some-other-key"))
    config = gateway_config({"oa": openai_provider(picky.url)}, {"gpt-4o": group(("oa", "gpt-4o"))})
    caplog.set_level(logging.DEBUG)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        with pytest.raises(openai.APIStatusError) as info:
            await openai_client(s.http_port).chat.completions.create(
                model="gpt-4o", messages=user("x")
            )
        async with httpx.AsyncClient() as http:
            shown = (await http.get(f"http://127.0.0.1:{s.admin_port}/config")).text
    assert info.value.status_code == 401
    assert "refused the sidecar's credentials" in str(info.value)
    assert picky.model_requests()[0].headers["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    body = info.value.response.text
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    for secret in (OPENAI_TEST_KEY, OPENAI_TEST_KEY[-8:]):
        assert secret not in body and secret not in logged and secret not in shown
    assert OPENAI_KEY_ENV in shown  # the reference is shown, never the value


@pytest.mark.usefixtures("provider_keys")
async def test_tokens_cost_and_failovers_are_metrics(
    fake_openai: FakeOpenAI, sidecar_factory: Any, start_fake_provider: Any
) -> None:
    """/metrics counts tokens and cost per group, provider and model, and failovers by reason."""
    backup = start_fake_provider(FakeOpenAI())
    fake_openai.script(Fail(503))
    backup.script(Reply(text="ok", input_tokens=1000, output_tokens=2000))
    config = gateway_config(
        {"oa": openai_provider(fake_openai.url), "backup": openai_provider(backup.url)},
        {
            "gpt-4o": group(("oa", "gpt-4o"), fallbacks=["mini"]),
            "mini": group(("backup", "gpt-4o-mini")),
        },
        prices={"gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.6}},
    )
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        await openai_client(s.http_port).chat.completions.create(model="gpt-4o", messages=user("x"))
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    backup_labels = {"upstream": "llm", "group": "gpt-4o", "provider": "backup"}
    backup_labels["model"] = "gpt-4o-mini"
    assert sample(text, "sidecar_llm_tokens_total", direction="input", **backup_labels) == 1000
    assert sample(text, "sidecar_llm_tokens_total", direction="output", **backup_labels) == 2000
    cost = sample(text, "sidecar_llm_cost_usd_total", **backup_labels)
    assert cost == pytest.approx(0.00135)
    failovers = sample(
        text, "sidecar_llm_failovers_total", upstream="llm", group="gpt-4o", reason="5xx"
    )
    assert failovers == 1


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name}{labels}")
