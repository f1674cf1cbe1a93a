"""k8s/ and `sidecar inject` output as a cluster would take them: rendered, schema-checked, run.

Offline: `kubectl kustomize` renders each kustomization, `kubernetes-validate --strict` checks
every object against the API schemas of Kubernetes 1.29 (the first with native sidecars on by
default) and the newest bundled version. The PodMonitor is a CRD with no bundled schema: it is
checked here against the fields of its CRD that k8s/ uses. The sidecar configs of k8s/ are
checked by `sidecar check` and the base one is run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sidecar.k8s.annotations import Defaults
from sidecar.k8s.inject import WORKLOADS, inject_stream
from sidecar.k8s.pod import DEFAULT_IMAGE
from sidecar.testing import SidecarProcess

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
FIXTURES = ROOT / "tests" / "fixtures" / "k8s"
BIN = Path(sys.executable).parent
KUBECTL, VALIDATE, SIDECAR = (str(BIN / n) for n in ("kubectl", "kubernetes-validate", "sidecar"))
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
OLDEST = min(kubernetes_validate.utils.all_versions(), key=lambda v: tuple(map(int, v.split("."))))
KUSTOMIZATIONS = sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))
#: API groups with bundled schemas; anything else (a CRD, a test's made-up group) is checked apart
BUILTIN_GROUPS = {"", "apps", "batch"}

#: The fields of the Prometheus Operator's PodMonitor CRD (monitoring.coreos.com/v1) that k8s/
#: uses, with their CRD types; unknown keys are refused, as --strict does for built-in kinds.
PODMONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                    "additionalProperties": False,
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^(0|([0-9]+(ms|s|m|h))+)$"},
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": "^(0|([0-9]+(ms|s|m|h))+)$",
                            },
                        },
                    },
                },
            },
        },
    },
}


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def objects(text: str) -> list[dict[str, Any]]:
    """Every object of a stream, the items of a List included."""
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        out.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return out


def validate(objs: list[dict[str, Any]], version: str, tmp_path: Path) -> None:
    """kubernetes-validate --strict on the built-in objects: every one passes, no warning."""
    builtin = [o for o in objs if o["apiVersion"].rpartition("/")[0] in BUILTIN_GROUPS]
    assert builtin, "nothing to validate"
    path = tmp_path / f"objects-{version}.yaml"
    path.write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    result = run(VALIDATE, "--strict", "-k", version, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout and "ERROR" not in result.stdout, result.stdout
    assert result.stdout.count(" passed for resource ") == len(builtin), result.stdout


def render(kustomization: str) -> str:
    result = run(KUBECTL, "kustomize", str(K8S / kustomization))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_covered() -> None:
    """The kustomizations below are all of k8s/ (a new example is validated too)."""
    assert KUSTOMIZATIONS == [
        "base",
        "examples/classic",
        "examples/job",
        "examples/podmonitor",
        "examples/scrape-annotations",
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders_and_validates(
    kustomization: str, version: str, tmp_path: Path
) -> None:
    """`kubectl apply -k k8s/...` would be accepted: every object valid for 1.29 and newest."""
    objs = objects(render(kustomization))
    validate(objs, version, tmp_path)
    for obj in objs:
        if obj["kind"] == "PodMonitor":
            jsonschema.validate(obj, PODMONITOR)


def test_classic_example_validates_for_clusters_older_than_native_sidecars(tmp_path: Path) -> None:
    """The classic layout is for clusters before 1.29: it uses nothing newer."""
    validate(objects(render("examples/classic")), OLDEST, tmp_path)


def test_podmonitor_is_checked_here_because_no_schema_is_bundled() -> None:
    """kubernetes-validate only warns on the CRD; the structural check refuses a typo."""
    obj = next(o for o in objects(render("examples/podmonitor")) if o["kind"] == "PodMonitor")
    result = run(VALIDATE, "--strict", "-k", VERSIONS[0], "-", stdin=yaml.safe_dump(obj))
    assert "Couldn't find schema for kind PodMonitor" in result.stdout
    obj["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, PODMONITOR)


@pytest.mark.parametrize("legacy", [False, True], ids=["native", "classic"])
def test_inject_output_validates(legacy: bool, tmp_path: Path) -> None:
    """What `sidecar inject` makes of every fixture renders with kustomize and validates."""
    defaults = Defaults(image=DEFAULT_IMAGE, config_map="sidecar", native=not legacy)
    # as a kustomize resource each, so kustomize reads them too (and expands the List)
    app = tmp_path / "app"
    app.mkdir()
    fixtures = sorted(FIXTURES.glob("*.yaml"))
    for fixture in fixtures:
        (app / fixture.name).write_text(
            inject_stream(fixture.read_text(), fixture.name, defaults).text
        )
    (app / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [f.name for f in fixtures]})
    )
    result = run(KUBECTL, "kustomize", str(app))
    assert result.returncode == 0, result.stderr
    objs = objects(result.stdout)
    assert {o["kind"] for o in objs} >= set(WORKLOADS)
    for version in VERSIONS + ([OLDEST] if legacy else []):
        validate(objs, version, tmp_path)


@pytest.mark.parametrize("kustomization", ["base", "examples/job"])
def test_rendered_manifests_pass_through_inject_unchanged(kustomization: str) -> None:
    """Injecting kustomize's output of k8s/ again changes nothing (it is already injected)."""
    rendered = render(kustomization)
    result = run(SIDECAR, "inject", stdin=rendered)
    assert (result.returncode, result.stdout) == (0, rendered), result.stderr


def test_inject_refusal_exits_2_with_nothing_on_stdout() -> None:
    """A pipeline stops on a bad manifest instead of applying half of it."""
    text = (FIXTURES / "web-app.yaml").read_text().replace("web-sidecar", "Web_Sidecar")
    result = run(
        SIDECAR, "inject", "-f", "-", stdin="kind: Namespace\napiVersion: v1\n---\n" + text
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: <stdin>: document 2 (line 3, Deployment web): "
        'spec.template.metadata.annotations["sidecar.io/config-map"]: a ConfigMap name is '
        "lowercase letters, digits, '-' and '.', got 'Web_Sidecar'\n"
    )


# --- the sidecar configs of k8s/ -----------------------------------------------------------------


@pytest.fixture
def mounted_secrets(tmp_path: Path) -> Path:
    """What the pod's Secret volumes hold, under tmp_path instead of /var/run/secrets/sidecar."""
    pki = tmp_path / "pki"
    for args in (
        ["init-ca", "--out", str(pki), "--trust-domain", "cluster.local"],
        ["issue", "--ca", str(pki), "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/web"]
        + ["--out", str(tmp_path / "web-tls")],
    ):
        result = run(SIDECAR, "certs", *args)
        assert result.returncode == 0, result.stderr
    (tmp_path / "billing-token").mkdir()
    (tmp_path / "billing-token" / "token").write_text("t-0123456789\n")
    return tmp_path


def config_text(path: Path, secrets: Path) -> str:
    return path.read_text().replace("/var/run/secrets/sidecar/", f"{secrets}/")


@pytest.mark.parametrize("config", ["base/sidecar.yaml", "examples/job/sidecar.yaml"])
def test_shipped_sidecar_configs_pass_check(
    config: str, mounted_secrets: Path, tmp_path: Path
) -> None:
    """The ConfigMaps' sidecar.yaml are valid configs where their Secrets are mounted."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(config_text(K8S / config, mounted_secrets))
    result = subprocess.run(
        [SIDECAR, "check", "-c", str(path)],
        env={**os.environ, "WEATHER_API_KEY": "k-42"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok (")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_base_config_serves_probes_on_the_port_the_pod_spec_names(mounted_secrets: Path) -> None:
    """SIDECAR_METRICS_PORT (set by inject from sidecar.io/metrics-port) is where probes land."""
    text = config_text(K8S / "base/sidecar.yaml", mounted_secrets)
    for port in ("15000", "15001", "15002"):  # ephemeral loopback ports: tests run side by side
        text = text.replace(f"127.0.0.1:{port}", "127.0.0.1:0")
    text = text.replace("0.0.0.0:", "127.0.0.1:")  # loopback only in tests
    metrics = free_port()
    env = {
        "SIDECAR_METRICS_PORT": str(metrics),
        "SIDECAR_INBOUND_PORT": "0",
        "WEATHER_API_KEY": "k-42",
        "OTEL_SDK_DISABLED": "true",  # the collector of the example does not exist here
    }
    with SidecarProcess(text, env=env) as sidecar:
        base = f"http://127.0.0.1:{metrics}"
        assert get(f"{base}/readyz")[0] == 200
        assert get(f"{base}/healthz")[0] == 200
        status, body = get(f"{base}/metrics")
        assert status == 200 and "sidecar_" in body
        assert get(f"{base}/config")[0] == 404  # the topology stays on the loopback admin port
        assert sidecar.terminate() == 0
