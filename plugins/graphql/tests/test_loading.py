"""What a user sees of the plugin outside a call: ``sidecar check`` naming a bad option's file,
key path and reason; graphql-core loaded only by a sidecar with a graphql upstream; the spans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SIDECAR = str(Path(sys.executable).with_name("sidecar"))


def check(tmp_path: Path, options: dict[str, object], **upstream: object) -> str:
    path = tmp_path / "sidecar.yaml"
    config = {
        "upstreams": {
            "shop": {
                "adapter": "graphql",
                "url": "http://127.0.0.1:9",
                **upstream,
                "options": options,
            }
        }
    }
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(  # noqa: S603
        [SIDECAR, "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("options", "upstream", "where", "reason"),
    [
        ({"limits": {"max_depth": 0}}, {}, "upstreams.shop.options.limits.max_depth", "at least 1"),
        ({"subscription": True}, {}, "upstreams.shop.options.subscription", "subscriptions"),
        (
            {"persisted_queries": {"allow_list": "/nonexistent/ops.json"}},
            {},
            "upstreams.shop.options.persisted_queries.allow_list",
            "cannot read",
        ),
    ],
)
def test_sidecar_check_names_the_file_the_key_and_the_reason(
    tmp_path: Path, options: dict[str, object], upstream: dict[str, object], where: str, reason: str
) -> None:
    """A wrong option is reported as file: key path: reason, before anything runs."""
    out = check(tmp_path, options, **upstream)
    line = next((x for x in out.splitlines() if where in x), "")
    assert str(tmp_path / "sidecar.yaml") in line and reason in line, out


PROBE = """
import json, sys
from sidecar.testing import running_sidecar
import asyncio, sidecar_graphql
config = json.loads(sys.argv[1])
async def main():
    async with running_sidecar(config, plugins=[sidecar_graphql]):
        loaded = sorted({m.split(".")[0] for m in sys.modules} & {"graphql", "redis"})
        print(json.dumps(loaded))
asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("upstreams", "expected"),
    [
        ({"plain": {"url": "http://127.0.0.1:9"}}, []),
        ({"g": {"adapter": "graphql", "url": "http://127.0.0.1:9"}}, ["graphql"]),
    ],
)
def test_graphql_core_is_loaded_only_with_a_graphql_upstream(
    upstreams: dict[str, object], expected: list[str]
) -> None:
    """Installing the plugin costs a sidecar without a graphql upstream nothing: graphql-core
    (about 0.1 s and 150 modules) and redis-py stay out; with one, graphql-core is loaded at
    start-up, redis-py still only for a Redis cache."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE, json.dumps({"upstreams": upstreams})],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


DOC = Path(__file__).resolve().parents[3] / "docs" / "graphql.md"


def test_the_documented_config_is_valid_and_documents_every_option() -> None:
    """docs/graphql.md's complete config validates, and names every option and limit."""
    from sidecar_graphql.config import GraphQLOptions, Limits, PersistedQueries, QueryCache

    text = DOC.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    options = yaml.safe_load(block)["upstreams"]["catalog"]["options"]
    GraphQLOptions.model_validate(options)
    for model in (GraphQLOptions, Limits, PersistedQueries, QueryCache):
        missing = [f for f in model.model_fields if f"`{f}" not in text and f".{f}`" not in text]
        assert missing == [], model.__name__
