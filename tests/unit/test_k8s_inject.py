"""`sidecar inject`: what it adds to each workload, what it leaves alone, and what it refuses."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.k8s.annotations import Defaults, parse_quantity
from sidecar.k8s.inject import WORKLOADS, InjectError, inject_stream
from sidecar.k8s.pod import DEFAULT_IMAGE, DEFAULT_RESOURCES, SidecarSpec, sidecar_container

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "k8s"
K8S = ROOT / "k8s"
NATIVE = Defaults(image=DEFAULT_IMAGE, config_map="sidecar", native=True)
CLASSIC = Defaults(image=DEFAULT_IMAGE, config_map="sidecar", native=False)
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.yaml"))


def inject(text: str, defaults: Defaults = NATIVE) -> str:
    return inject_stream(text, "in.yaml", defaults).text


def docs(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def pod_spec(obj: dict[str, Any]) -> Any:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def names(containers: list[dict[str, Any]] | None) -> list[str]:
    return [c["name"] for c in containers or []]


def deployment(annotations: dict[str, str] | None = None, **pod: Any) -> str:
    template: dict[str, Any] = {"metadata": {"labels": {"app": "a"}}}
    if annotations is not None:
        template["metadata"]["annotations"] = annotations
    template["spec"] = {"containers": [{"name": "app", "image": "app:1"}], **pod}
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "a"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template},
    }
    return yaml.safe_dump(obj, sort_keys=False)


def sidecar_of(text: str) -> dict[str, Any]:
    spec = pod_spec(docs(text)[0])
    found = [
        c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "sidecar"
    ]
    assert len(found) == 1
    return found[0]


# --- the shipped manifests are what inject makes -------------------------------------------


@pytest.mark.parametrize(
    ("app", "shipped"),
    [("web-app.yaml", "base/deployment.yaml"), ("report-job.yaml", "examples/job/job.yaml")],
)
def test_shipped_manifests_equal_what_inject_makes_of_the_app(app: str, shipped: str) -> None:
    """k8s/ and `sidecar inject` cannot drift: the shipped workload is inject's output."""
    made = docs(inject((FIXTURES / app).read_text(), Defaults(DEFAULT_IMAGE, "sidecar", True)))
    assert made == docs((K8S / shipped).read_text()), "run .venv/bin/python k8s/regenerate.py"


def test_classic_example_is_what_inject_legacy_makes() -> None:
    """k8s/examples/classic replaces the pod template with exactly `inject --legacy`'s."""
    made = docs(inject((FIXTURES / "web-app.yaml").read_text(), CLASSIC))[0]
    patch = docs((K8S / "examples/classic/classic-pod-template.yaml").read_text())[0]
    expected = [{"op": "replace", "path": "/spec/template", "value": made["spec"]["template"]}]
    assert patch == expected, "run .venv/bin/python k8s/regenerate.py"


def test_base_container_is_the_default_spec_with_the_base_annotations() -> None:
    """The base's sidecar has every default of sidecar/k8s/pod.py: security, probes, resources."""
    container = sidecar_of((K8S / "base/deployment.yaml").read_text())
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"] == DEFAULT_RESOURCES.as_dict()
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes == {
        "startupProbe": {"path": "/readyz", "port": "sidecar-metrics"},
        "readinessProbe": {"path": "/readyz", "port": "sidecar-metrics"},
        "livenessProbe": {"path": "/healthz", "port": "sidecar-metrics"},
    }
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    assert mounts["/etc/sidecar"] is True and "subPath" not in str(container)


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
@pytest.mark.parametrize("defaults", [NATIVE, CLASSIC], ids=["native", "classic"])
def test_injecting_twice_is_injecting_once(fixture: str, defaults: Defaults) -> None:
    """A pipeline may run inject on already injected manifests: the output does not change."""
    once = inject((FIXTURES / fixture).read_text(), defaults)
    assert inject(once, defaults) == once


def test_untouched_documents_are_written_back_byte_for_byte() -> None:
    """Comments, quoting and key order of the documents inject leaves alone are kept."""
    text = (FIXTURES / "helm-rendered.yaml").read_text()
    out = inject(text)
    pieces = text.split("\n---\n")
    # all but the apps/v1 Deployment and the ReplicaSet (another group's Deployment is kept)
    kept = [p for p in pieces if "kind: Deployment\n" not in p and "kind: ReplicaSet" not in p]
    assert len(kept) == 5
    for piece in kept:
        assert piece in out
    assert out.count("# Source: ") == text.count("# Source: ")  # changed documents keep it too
    assert out.index("serviceaccount.yaml") < out.index("configmap.yaml") < out.index("tests/")


def test_documents_are_found_in_crlf_files_and_after_directives() -> None:
    """Windows line ends and %YAML directives still separate documents, which stay intact."""
    namespace = "apiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: shop}\r\n"
    app = deployment().replace("\n", "\r\n")
    out = inject(namespace + "---\r\n" + app + "...\r\n%YAML 1.1\r\n---\r\n" + namespace)
    assert out.startswith(namespace + "---\r\n")
    assert out.endswith("\n...\n%YAML 1.1\r\n---\r\n" + namespace)
    assert [d["kind"] for d in docs(out)] == ["Namespace", "Deployment", "Namespace"]
    assert names(pod_spec(docs(out)[1])["initContainers"]) == ["sidecar"]


def test_every_workload_kind_gets_one_native_sidecar_at_its_pod_spec() -> None:
    """Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob pods all get it."""
    out = [
        o
        for f in ALL_FIXTURES
        if f != "list.yaml"
        for o in docs(inject((FIXTURES / f).read_text()))
    ]
    out += docs(inject((FIXTURES / "list.yaml").read_text()))[0]["items"]
    out = [o for o in out if o["kind"] in WORKLOADS]
    injected = {o["kind"] for o in out if "sidecar" in names(pod_spec(o).get("initContainers"))}
    assert injected == {"Pod", "Deployment", "StatefulSet", "ReplicaSet", "Job", "CronJob"}
    optout = next(o for o in out if o["kind"] == "DaemonSet")  # sidecar.io/inject: "false"
    assert names(pod_spec(optout).get("initContainers")) == []
    other = next(o for o in out if o["apiVersion"] == "example.com/v1")
    assert "initContainers" not in pod_spec(other)


def test_app_containers_init_containers_and_volumes_keep_their_order() -> None:
    """The sidecar goes first among init containers; nothing of the app moves or changes."""
    text = (FIXTURES / "multi-container-pod.yaml").read_text()
    before, after = pod_spec(docs(text)[0]), pod_spec(docs(inject(text))[0])
    assert names(after["initContainers"]) == ["sidecar", "migrate"]
    assert after["initContainers"][1:] == before["initContainers"]
    assert after["containers"] == before["containers"]
    assert [v["name"] for v in after["volumes"]] == ["cache", "sidecar-config", "sidecar-tmp"]


def test_classic_layout_puts_the_sidecar_first_with_a_post_start_wait() -> None:
    """--legacy: first regular container, no restartPolicy, postStart polls /readyz."""
    out = inject((FIXTURES / "multi-container-pod.yaml").read_text(), CLASSIC)
    spec = pod_spec(docs(out)[0])
    assert names(spec["containers"]) == ["sidecar", "checkout", "log-shipper"]
    assert names(spec["initContainers"]) == ["migrate"]
    container = spec["containers"][0]
    assert "restartPolicy" not in container
    command = container["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["python", "-c"] and "127.0.0.1:15031/readyz" in command[2]


def test_legacy_on_a_job_warns_that_the_pod_never_completes() -> None:
    """A classic sidecar would keep a Job running for ever: inject says so on stderr."""
    result = inject_stream((FIXTURES / "cronjob.yaml").read_text(), "cj.yaml", CLASSIC)
    assert len(result.warnings) == 1 and "never completes" in result.warnings[0]
    assert "CronJob nightly-sync" in result.warnings[0]
    assert inject_stream((FIXTURES / "cronjob.yaml").read_text(), "cj", NATIVE).warnings == []


def test_reinjecting_applies_new_options_and_switches_layout() -> None:
    """A second run with another image or layout replaces the sidecar, never adds a second."""
    once = inject(deployment())
    again = inject(
        once, Defaults(image="registry.example.com/sidecar:0.2.0", config_map="x", native=False)
    )
    spec = pod_spec(docs(again)[0])
    assert "initContainers" not in spec
    assert names(spec["containers"]) == ["sidecar", "app"]
    assert spec["containers"][0]["image"] == "registry.example.com/sidecar:0.2.0"
    assert [v["name"] for v in spec["volumes"]] == ["sidecar-config", "sidecar-tmp"]
    assert spec["volumes"][0]["configMap"] == {"name": "x"}


# --- opt-out and annotations -----------------------------------------------------------------


@pytest.mark.parametrize("on", ["workload", "template"])
def test_opt_out_leaves_the_document_as_it_was(on: str) -> None:
    """sidecar.io/inject: "false" on the workload or its pod template: not a byte changes."""
    obj = docs(deployment())[0]
    meta = obj["metadata"] if on == "workload" else obj["spec"]["template"]["metadata"]
    meta["annotations"] = {"sidecar.io/inject": "false"}
    text = "# mine\n" + yaml.safe_dump(obj, sort_keys=True)
    assert inject(text) == text


def test_the_pod_templates_annotation_wins_over_the_workloads() -> None:
    """The innermost annotation wins: a template may opt back in, or set its own image."""
    obj = docs(deployment({"sidecar.io/inject": "true", "sidecar.io/image": "inner:1"}))[0]
    obj["metadata"]["annotations"] = {"sidecar.io/inject": "false", "sidecar.io/image": "outer:1"}
    assert sidecar_of(inject(yaml.safe_dump(obj)))["image"] == "inner:1"


def test_annotations_set_ports_resources_config_map_and_secrets() -> None:
    """Each documented annotation changes exactly its part of the container."""
    notes = {
        "sidecar.io/config-map": "web-sidecar",
        "sidecar.io/metrics-port": "16030",
        "sidecar.io/inbound-port": "16006",
        "sidecar.io/cpu-request": "50m",
        "sidecar.io/cpu-limit": "none",
        "sidecar.io/memory-request": "64Mi",
        "sidecar.io/memory-limit": "1Gi",
        "sidecar.io/secret-volumes": "web-tls, api-token",
        "sidecar.io/secret-env": "API_KEY=weather/key",
    }
    out = inject(deployment(notes))
    container = sidecar_of(out)
    assert [p["containerPort"] for p in container["ports"]] == [16030, 16006]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["SIDECAR_METRICS_PORT"] == "16030" and env["SIDECAR_INBOUND_PORT"] == "16006"
    assert env["API_KEY"] == {"secretKeyRef": {"name": "weather", "key": "key"}}
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "1Gi"},
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["sidecar-secret-web-tls"] == "/var/run/secrets/sidecar/web-tls"
    volumes = {v["name"]: v for v in pod_spec(docs(out)[0])["volumes"]}
    assert volumes["sidecar-config"]["configMap"] == {"name": "web-sidecar"}
    assert volumes["sidecar-secret-api-token"]["secret"] == {"secretName": "api-token"}
    status = json.loads(
        docs(out)[0]["spec"]["template"]["metadata"]["annotations"]["sidecar.io/status"]
    )
    assert status["volumes"] == list(volumes)


def test_container_spec_follows_the_options() -> None:
    """The spec module alone: image and config path as given; native has restartPolicy."""
    container = sidecar_container(SidecarSpec(image="i:1"))
    assert (container["image"], container["args"], container["restartPolicy"]) == (
        "i:1",
        ["-c", "/etc/sidecar/sidecar.yaml"],
        "Always",
    )


# --- refusals ----------------------------------------------------------------------------------


def refusal(text: str, defaults: Defaults = NATIVE) -> str:
    with pytest.raises(InjectError) as caught:
        inject_stream(text, "in.yaml", defaults)
    return str(caught.value)


PREFIX = "in.yaml: document 2 (line 4, Deployment a): "


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"template.annotations": {"sidecar.io/metrics-port": "http"}},
            'spec.template.metadata.annotations["sidecar.io/metrics-port"]: a port is a number '
            "from 1 to 65535, got 'http'",
        ),
        (
            {"template.annotations": {"sidecar.io/metric-port": "1"}},
            'spec.template.metadata.annotations["sidecar.io/metric-port"]: unknown sidecar '
            "annotation (did you mean sidecar.io/metrics-port?)",
        ),
        (
            {"annotations": {"sidecar.io/inject": "no"}},
            'metadata.annotations["sidecar.io/inject"]: expected "true" or "false", got \'no\'',
        ),
        (
            {"annotations": {"sidecar.io/inject": False}},
            'metadata.annotations["sidecar.io/inject"]: annotation values are strings: '
            'quote it ("false")',
        ),
        (
            {"template.annotations": {"sidecar.io/metrics-port": 15031}},
            'spec.template.metadata.annotations["sidecar.io/metrics-port"]: annotation values '
            'are strings: quote it ("15031")',
        ),
        (
            {"hostNetwork": True},
            "spec.template.spec.hostNetwork: a pod in the node's network namespace would bind "
            "the sidecar's loopback egress, which calls upstreams with its credentials, on the "
            "node itself, reachable by every process there, and two such pods on one node "
            'collide on its ports: opt this workload out with sidecar.io/inject: "false"',
        ),
        (
            {"containers": [{"name": "app", "image": "a", "ports": [{"containerPort": 15001}]}]},
            "spec.template.spec.containers[0].ports[0].containerPort: 15001 is the sidecar's "
            "port (HTTP egress, set in its config): move the app's port, or opt out with "
            'sidecar.io/inject: "false"',
        ),
        (
            {"template.annotations": {"sidecar.io/cpu-request": "2", "sidecar.io/cpu-limit": "1"}},
            'spec.template.metadata.annotations["sidecar.io/cpu-request"]: the cpu request 2 is '
            "above its limit 1",
        ),
        (
            {"template.annotations": {"sidecar.io/memory-limit": "256m"}},
            "spec.template.metadata.annotations[\"sidecar.io/memory-limit\"]: 'm' is thousandths "
            "of a byte here: did you mean 256mi?",
        ),
        (
            {"template.annotations": {"sidecar.io/secret-env": "KEY=weather"}},
            "spec.template.metadata.annotations[\"sidecar.io/secret-env\"]: 'KEY=weather': "
            "expected NAME=secret/key, e.g. PAYMENTS_API_KEY=payments-api/key",
        ),
        (
            {"containers": [{"name": "sidecar", "image": "mine:1"}]},
            'spec.template.spec.containers[0].name: a container named "sidecar" is already here, '
            "not added by sidecar inject (no sidecar.io/status annotation): rename it, or opt out "
            'with sidecar.io/inject: "false"',
        ),
        (
            {"containers": [{"name": "app", "image": "a", "ports": [{"containerPort": 15030}]}]},
            "spec.template.spec.containers[0].ports[0].containerPort: 15030 is the sidecar's "
            "port: give the sidecar another one with the sidecar.io/metrics-port annotation",
        ),
        (
            {"volumes": [{"name": "sidecar-tmp", "emptyDir": {}}]},
            "spec.template.spec.volumes[0].name: the sidecar's volume 'sidecar-tmp' is already "
            "here, not added by sidecar inject (no sidecar.io/status annotation): rename it",
        ),
        (
            {"template.annotations": {"sidecar.io/status": "{}"}},
            'spec.template.metadata.annotations["sidecar.io/status"]: not written by sidecar '
            "inject: remove it",
        ),
        (
            {"template": None},
            "spec.template.spec.containers: missing: a Deployment without a pod template (and "
            "its containers) cannot get a sidecar",
        ),
    ],
)
def test_a_bad_workload_is_refused_naming_the_document_and_path(
    change: dict[str, Any], message: str
) -> None:
    """Every refusal says which document (index, line, kind, name), which key, and why."""
    obj = docs(deployment())[0]
    template = obj["spec"]["template"]
    for key, value in change.items():
        if key == "annotations":
            obj["metadata"]["annotations"] = value
        elif key == "template.annotations":
            template["metadata"]["annotations"] = value
        elif key == "template":
            del obj["spec"]["template"]
        else:
            template["spec"][key] = value
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\n" + yaml.safe_dump(obj)
    assert refusal(text) == PREFIX + message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1\n", "in.yaml: line 2: not YAML: expected ',' or ']', but got '<stream end>'"),
        (
            "kind: Pod\n---\napiVersion: v1\nkind: Pod\nkind: Job\n",
            "in.yaml: line 5: not YAML: key 'kind' is written twice (first on line 4)",
        ),
        (
            "---\n- just\n- a list\n",
            "in.yaml: document 1 (line 1, list): (document): not a Kubernetes object: a mapping "
            "with apiVersion and kind",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: batch/v1, kind: Job, "
            "metadata: {name: j}, spec: {}}\n",
            "in.yaml: document 1 (line 1, List (no name)): items[0].spec.template.spec.containers: "
            "missing: a Job without a pod template (and its containers) cannot get a sidecar",
        ),
    ],
)
def test_input_that_is_not_a_manifest_stream_is_refused(text: str, message: str) -> None:
    """Not YAML, duplicate keys, non-objects, a List item without a pod template."""
    assert refusal(text) == message


# --- the command -------------------------------------------------------------------------------


def test_command_reads_stdin_and_writes_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`... | sidecar inject | kubectl apply -f -`: stdin in, the whole stream out, exit 0."""
    monkeypatch.setattr("sys.stdin", io.StringIO(deployment()))
    assert main(["inject", "--image", "reg/sidecar:9", "--config-map", "app-sidecar"]) == 0
    out = capsys.readouterr()
    assert sidecar_of(out.out)["image"] == "reg/sidecar:9" and out.err == ""


def test_command_refusal_writes_nothing_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad document anywhere: exit 2, the reason on stderr, and no half-written stream."""
    bad = tmp_path / "m.yaml"
    bad.write_text(deployment() + "---\n" + deployment({"sidecar.io/inject": "maybe"}))
    assert main(["inject", "-f", str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"error: {bad}: document 2 (line ")


@pytest.mark.parametrize(
    "args", [["--image", "bad image"], ["--config-map", "Not_A_Name"], ["-f", "/nonexistent"]]
)
def test_command_refuses_bad_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """An option is checked like the annotation it stands in for; a missing file is exit 2."""
    assert main(["inject", *args]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("error: ")


@pytest.mark.parametrize("source", ["false", "False", "FALSE"])
def test_an_unquoted_boolean_gets_a_hint_that_works(source: str) -> None:
    """Following the hint for an unquoted `sidecar.io/inject: false` opts the workload out."""
    text = deployment().replace(
        "labels:", f"annotations:\n        sidecar.io/inject: {source}\n      labels:", 1
    )
    hint = refusal(text).rpartition("quote it (")[2].rstrip(")")
    assert hint == '"false"'
    fixed = text.replace(f"sidecar.io/inject: {source}", f"sidecar.io/inject: {hint}")
    assert inject(fixed) == fixed


@pytest.mark.parametrize(
    ("port", "what"),
    [
        (15000, "port (admin, set in its config)"),
        (15001, "port (HTTP egress, set in its config)"),
        (15002, "port (gRPC egress, set in its config)"),
        (15030, "port: give the sidecar another one with the sidecar.io/metrics-port annotation"),
        (15006, "port: give the sidecar another one with the sidecar.io/inbound-port annotation"),
        (9000, "port: give the sidecar another one with the sidecar.io/metrics-port annotation"),
    ],
)
def test_every_sidecar_port_declared_by_an_app_container_is_refused(port: int, what: str) -> None:
    """An app (or init) container declaring any port the sidecar binds is refused, not injected."""
    app = {"name": "app", "image": "a", "ports": [{"containerPort": 8080}, {"containerPort": port}]}
    notes = {"sidecar.io/metrics-port": "9000"} if port == 9000 else None
    for key in ("containers", "initContainers"):
        text = deployment(notes, **{key: [app]})
        message = refusal(text)
        assert (
            f"spec.template.spec.{key}[0].ports[1].containerPort: {port} is the sidecar's {what}"
            in message
        )


def test_loopback_ports_checked_are_the_config_defaults() -> None:
    """The admin, HTTP and gRPC ports inject protects are the ones an unset config binds."""
    from sidecar.config.models import AdminConfig, GrpcListenerConfig, HttpListenerConfig
    from sidecar.k8s.pod import LOOPBACK_PORTS

    defaults = [
        m.model_fields["address"].default
        for m in (AdminConfig, HttpListenerConfig, GrpcListenerConfig)
    ]
    assert sorted(LOOPBACK_PORTS) == [int(str(a).rpartition(":")[2]) for a in defaults]


def test_host_network_is_refused_unless_opted_out() -> None:
    """A hostNetwork pod is refused; `sidecar.io/inject: "false"` leaves it as it was."""
    assert "spec.template.spec.hostNetwork: " in refusal(deployment(hostNetwork=True))
    opted_out = deployment({"sidecar.io/inject": "false"}, hostNetwork=True)
    assert inject(opted_out) == opted_out
    assert sidecar_of(inject(deployment(hostNetwork=False)))["name"] == "sidecar"


def test_command_warns_once_about_the_bare_default_image(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --image, one warning says to push the image and pass --image; none with it."""
    two = deployment() + "---\n" + deployment()
    monkeypatch.setattr("sys.stdin", io.StringIO(two))
    assert main(["inject"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1
    assert f"bare name {DEFAULT_IMAGE}, which no registry serves: push the image" in err
    assert "pass --image" in err
    for args, notes in (
        (["--image", "reg/sidecar:9"], None),
        ([], {"sidecar.io/image": "reg/sidecar:9"}),
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO(deployment(notes)))
        assert main(["inject", *args]) == 0
        assert capsys.readouterr().err == ""


def test_quantities_parse_like_kubernetes() -> None:
    """Requests are compared with limits as the API server compares them."""
    assert parse_quantity("250m") * 4 == parse_quantity("1")
    assert parse_quantity("1Gi") == 1024 * parse_quantity("1Mi") == 2**30
    assert parse_quantity("1e3") == parse_quantity("1k")
    for bad in ("", "1.2.3", "-1", "10 Mi", "1x"):
        with pytest.raises(ValueError):
            parse_quantity(bad)
