"""docs/kubernetes.md's walkthroughs, run as a platform team copies them, with no cluster.

Like ``test_docs_walkthroughs``, each test reads its blocks from the Markdown (``<!--
walkthrough: NAME -->`` anchors) and runs them in a user's terminal (``doc_session``). No API
server can run here, so what needs one is stood in for, and says so:

- ``kubectl apply -f -`` at the end of a pipeline: the stream it would apply is written to a file
  and checked offline instead, with ``kubernetes-validate --strict`` against Kubernetes 1.29 and
  the newest version it bundles (every built-in object passes, no warning), and the sidecar it
  should carry is looked for;
- ``kubectl create secret ...``: run with ``--dry-run=client -o yaml``, which needs no cluster
  (checked: every kubectl here uses a kubeconfig whose API server is a closed loopback port, so
  one that tried to reach a server would fail, never find one);
- ``kubectl get deploy web -o yaml``: the app of k8s/base as an API server returns it (server
  defaults, metadata and status added); ``helm template shop ./chart``: a Helm-rendered stream
  (tests/fixtures/k8s/helm-rendered.yaml; there is no helm here);
- made-up paths: the Secrets ``sidecar check`` reads are files of the test.

The refusal example runs its real ``kubectl apply -f -``: given nothing, it stops before any
server is asked. Not run: ``kubectl rollout``/``logs`` (a cluster), and the benchmark
``bench/pod_resources.py`` itself (its ``--help`` is checked against what the doc says it does).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.k8s.inject import WORKLOADS
from sidecar.k8s.pod import DEFAULT_IMAGE

from .doc_blocks import REPO, console_steps, section, shell_commands, walkthrough
from .doc_session import VENV_BIN, DocSession, PortMap
from .test_k8s_manifests import KUSTOMIZATIONS, VERSIONS, objects, validate

DOC = "docs/kubernetes.md"
BASE = REPO / "k8s" / "base"
APP = REPO / "tests" / "fixtures" / "k8s" / "web-app.yaml"  # k8s/base's app before injection
HELM_RENDERED = REPO / "tests" / "fixtures" / "k8s" / "helm-rendered.yaml"
APPLY = "kubectl apply -f -"
#: a kubeconfig whose API server is a closed port: whatever needs a cluster fails at once
NO_CLUSTER = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: not-a-cluster}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture
def session(tmp_path: Path) -> Iterator[DocSession]:
    s = DocSession(tmp_path / "work", PortMap([]))
    s.command_rewrites.append((r"(?<![\w/])\.venv/bin/", f"{VENV_BIN}/"))
    s.env["KUBECONFIG"] = str(s.write(".kube/config", NO_CLUSTER))
    try:
        yield s
    finally:
        s.close()


def offline(session: DocSession, command: str) -> str:
    """Run ``command`` with no cluster: what it would apply (a pipeline ending in ``kubectl
    apply -f -``), or what it printed (``create secret`` with ``--dry-run=client -o yaml``)."""
    applied = session.dir / "applied.yaml"
    applied.unlink(missing_ok=True)
    if APPLY in command:
        command = command.replace(APPLY, f"cat > {applied.name}")
    elif " create secret " in command and "--dry-run" not in command:
        command = re.sub(r"\s*(#.*)?$", " --dry-run=client -o yaml", command, count=1)
    code, out = session.shell(f"set -o pipefail; {command}")  # a failed step fails the test
    assert code == 0, f"`{command}` exited {code}:\n{out}"
    return applied.read_text() if applied.exists() else out


def valid_offline(stream: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The objects of ``stream``, each built-in one valid for 1.29 and the newest version."""
    objs = objects(stream)
    for version in VERSIONS:
        validate(objs, version, tmp_path)
    return objs


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    template: dict[str, Any] = (
        spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]
    )
    return template


def sidecar_container(obj: dict[str, Any], *, native: bool = True) -> dict[str, Any]:
    """The injected container: first init container (native) or first container (classic)."""
    spec = pod_template(obj)["spec"]
    first: dict[str, Any] = spec["initContainers" if native else "containers"][0]
    assert first["name"] == "sidecar", f"{obj['kind']} {obj['metadata']['name']}: {spec}"
    return first


def workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours to inject: the built-in workload kinds (a CRD's "Deployment" is not)."""
    groups = {"v1", "apps/v1", "batch/v1"}
    return [o for o in objs if o["kind"] in WORKLOADS and o["apiVersion"] in groups]


def base_before_injection(root: Path, *, annotation: str | None = None) -> None:
    """k8s/base as a team has it before ``sidecar inject``: the app without its sidecar."""
    for name in ("kustomization.yaml", "service.yaml", "serviceaccount.yaml", "sidecar.yaml"):
        (root / name).write_text((BASE / name).read_text())
    app = APP.read_text()
    if annotation:
        anchor = "        sidecar.io/config-map: web-sidecar\n"
        assert app.count(anchor) == 1, "the app fixture's annotations changed"
        app = app.replace(anchor, f"{anchor}        {annotation}\n")
    (root / "deployment.yaml").write_text(app)


def as_served(app: str) -> str:
    """``kubectl get deploy web -o yaml``: the Deployment with what the API server adds."""
    d = yaml.safe_load(app)
    d["metadata"].update(
        namespace="shop",
        uid="0b6f3c2e-8d1e-4c1a-9a57-3f0c1d2e4b5a",
        resourceVersion="48213",
        generation=3,
        creationTimestamp="2026-11-02T09:14:07Z",
        annotations={"deployment.kubernetes.io/revision": "3"},
    )
    d["spec"].update(progressDeadlineSeconds=600, revisionHistoryLimit=10)
    d["spec"]["template"]["metadata"]["creationTimestamp"] = None
    pod = d["spec"]["template"]["spec"]
    pod.update(
        dnsPolicy="ClusterFirst",
        restartPolicy="Always",
        schedulerName="default-scheduler",
        securityContext={},
    )
    for c in pod["containers"]:
        c.update(
            imagePullPolicy="IfNotPresent",
            terminationMessagePath="/dev/termination-log",
            terminationMessagePolicy="File",
        )
    d["status"] = {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2}
    return yaml.safe_dump(d, sort_keys=False)


# --- the manifests, their config, their Secrets ---------------------------------------------


def test_manifest_table_names_every_kustomization_and_each_applies(
    session: DocSession, tmp_path: Path
) -> None:
    """The table's `kubectl apply -k DIR` lines are all of k8s/, and each would be accepted."""
    # apply -k needs a cluster: each is rendered with `kubectl kustomize` and validated offline
    table = section(DOC, "The manifests (`k8s/`)")
    dirs = re.findall(r"`kubectl apply -k k8s/([\w/-]+)`", table)
    assert sorted(dirs) == KUSTOMIZATIONS, dirs
    rendered = ""
    for d in dirs:
        code, out = session.shell(f"cd {REPO} && kubectl kustomize k8s/{d}")
        assert code == 0, out
        rendered += f"---\n{out}"
    kinds = {o["kind"] for o in valid_offline(rendered, tmp_path)}
    assert {"Deployment", "Job", "PodMonitor", "ConfigMap", "Service"} <= kinds, kinds


def test_check_passes_the_base_config_where_its_secrets_are_mounted(session: DocSession) -> None:
    """`sidecar check -c sidecar.yaml` in k8s/base prints what the doc shows; the Job's passes."""
    # the Secret volumes /var/run/secrets/sidecar/<secret>/: directories of the test, filled as
    # the kubelet would (a certificate from `sidecar certs`, a token); WEATHER_API_KEY set
    spiffe = "spiffe://cluster.local/ns/shop/sa/web"
    code, out = session.shell(
        "sidecar certs init-ca --out pki/ca --trust-domain cluster.local && "
        f"sidecar certs issue --ca pki/ca --spiffe-id {spiffe} --out secrets/web-tls"
    )
    assert code == 0, out
    session.write("secrets/billing-token/token", "t-0123456789\n")
    session.env["WEATHER_API_KEY"] = "k-42"
    session.stand_in("/var/run/secrets/sidecar/", f"{session.dir}/secrets/")
    session.write_config("sidecar.yaml", (BASE / "sidecar.yaml").read_text(), runs=False)
    session.run_blocks(walkthrough(DOC, "kubernetes-check"))
    job = (REPO / "k8s/examples/job/sidecar.yaml").read_text()
    session.write_config("job/sidecar.yaml", job, runs=False)
    code, out = session.shell("cd job && sidecar check -c sidecar.yaml")
    assert (code, out.splitlines()[0]) == (0, "sidecar.yaml: ok (1 upstream, 0 routes)"), out


def test_secrets_created_as_shown_are_the_ones_the_base_mounts(
    session: DocSession, tmp_path: Path
) -> None:
    """The doc's Secrets hold every Secret key k8s/base uses; the rotation re-creates web-tls."""
    # create secret: --dry-run=client -o yaml (no cluster); apply: validated offline instead
    session.write("billing-token", "t-0123456789\n")  # the team's token file
    session.env["WEATHER_API_KEY"] = "k-42"
    created, rotation = walkthrough(DOC, "kubernetes-secrets")
    secrets: dict[str, dict[str, str]] = {}
    for command in shell_commands(created):
        out = offline(session, command)
        if " create secret " in command:
            (secret,) = valid_offline(out, tmp_path)
            secrets[secret["metadata"]["name"]] = secret["data"]
            listed = re.search(r"#\s*([\w.]+(?:, [\w.]+)+)\s*$", command)
            if listed:  # "# tls.crt, tls.key, ca.crt": the keys, as the comment says
                assert set(secret["data"]) == set(listed[1].split(", ")), secret["data"]
    assert base64.b64decode(secrets["weather-api"]["key"]) == b"k-42"
    # every Secret key the base's pod and config read
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    used = {(v["secret"]["secretName"], None) for v in pod["volumes"] if "secret" in v}
    for c in pod["initContainers"] + pod["containers"]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add((ref["name"], ref["key"]))
    config = (BASE / "sidecar.yaml").read_text()
    used |= set(re.findall(r"/var/run/secrets/sidecar/([\w-]+)/([\w.-]+)", config))
    assert {name for name, _ in used} == set(secrets), (used, secrets)
    for name, key in used:
        assert key is None or key in secrets[name], (name, key, secrets[name])
    # the rotation: a new certificate, the same Secret, applied in place
    commands = shell_commands(rotation)
    assert len(commands) == 2 and commands[1].rstrip().endswith(APPLY), commands
    offline(session, commands[0])
    (rotated,) = valid_offline(offline(session, commands[1]), tmp_path)
    assert rotated["metadata"] == {"name": "web-tls", "namespace": "shop"}
    assert set(rotated["data"]) == set(secrets["web-tls"])
    assert rotated["data"]["tls.crt"] != secrets["web-tls"]["tls.crt"]
    assert rotated["data"]["ca.crt"] == secrets["web-tls"]["ca.crt"]


# --- sidecar inject -------------------------------------------------------------------------


def test_inject_synopsis_is_the_cli_usage(session: DocSession) -> None:
    """The synopsis shows the options `sidecar inject --help` has, and - as stdin."""
    (synopsis,) = walkthrough(DOC, "kubernetes-inject-usage")
    code, out = session.shell("sidecar inject --help")
    assert code == 0, out
    usage = " ".join(out.split("\n\n")[0].split()).removeprefix("usage: ")
    assert "(default: - stdin)" in " ".join(out.split())
    shown = synopsis.text.strip().replace("[-f FILE|-]", "[-f FILE]")
    assert usage.replace(" [-h]", "") == shown, (usage, shown)


def test_inject_pipelines_apply_injected_valid_streams(session: DocSession, tmp_path: Path) -> None:
    """Each pipeline of the doc gives a valid stream whose workloads carry the sidecar asked."""
    # overlays/prod: an overlay of base/, k8s/base before injection; deployment.yaml: its app.
    # The `kubectl get` and `helm template` stand-ins and the offline apply: module docstring
    (session.dir / "base").mkdir()
    base_before_injection(session.dir / "base")
    session.write("overlays/prod/kustomization.yaml", "resources: [../../base]\n")
    session.write("deployment.yaml", APP.read_text())
    session.write("deployment-as-served.yaml", as_served(APP.read_text()))
    session.write("helm-rendered.yaml", HELM_RENDERED.read_text())
    session.command_rewrites += [
        (r"helm template shop \./chart", "cat helm-rendered.yaml"),
        (r"kubectl get deploy web -o yaml", "cat deployment-as-served.yaml"),
    ]
    commands = shell_commands(walkthrough(DOC, "kubernetes-inject")[0])
    assert len(commands) == 4, f"a pipeline no rule here checks: {commands}"
    for command in commands:
        stream = offline(session, command)
        if "> shop.yaml" in command:
            stream = (session.dir / "shop.yaml").read_text()
        image = re.search(r"--image (\S+)", command)
        legacy = "--legacy" in command
        config_map = re.search(r"--config-map (\S+)", command)
        injected = workloads(valid_offline(stream, tmp_path))
        assert injected, f"`{command}`: no workload in\n{stream}"
        for obj in injected:
            sidecar = sidecar_container(obj, native=not legacy)
            assert sidecar["image"] == (image[1] if image else DEFAULT_IMAGE), command
            assert ("lifecycle" in sidecar) == legacy, command  # classic: the postStart hook
            volumes = {v["name"]: v for v in pod_template(obj)["spec"]["volumes"]}
            if config_map:
                assert volumes["sidecar-config"]["configMap"]["name"] == config_map[1]


def test_inject_refusal_stops_the_pipeline_as_shown(session: DocSession) -> None:
    """A typo in a sidecar annotation: inject's error as shown, and kubectl applies nothing."""
    # "." is k8s/base before injection with the typo of the error shown; kubectl apply -f - is
    # the real one: with no objects it stops before asking any server
    (block,) = walkthrough(DOC, "kubernetes-inject-refusal")
    (step,) = console_steps(block)
    typo = re.search(r'annotations\["(sidecar\.io/[\w-]+)"\]', step.output)
    assert typo, step.output
    base_before_injection(session.dir, annotation=f'{typo[1]}: "100m"')
    session.run_step(step)
    assert session.last_code == 1  # kubectl's; inject's own is 2 (its unit tests check it)


def test_ports_fragment_is_what_the_shipped_configs_bind() -> None:
    """The pod-facing ports bind through SIDECAR_METRICS_PORT/SIDECAR_INBOUND_PORT as shown."""
    (fragment,) = walkthrough(DOC, "kubernetes-ports")
    shown = yaml.safe_load(fragment.text)
    base = yaml.safe_load((BASE / "sidecar.yaml").read_text())
    job = yaml.safe_load((REPO / "k8s/examples/job/sidecar.yaml").read_text())
    for section_name, keys in shown.items():
        for key, value in keys.items():
            assert base[section_name][key] == value, (section_name, key)
    assert job["admin"]["metrics_address"] == shown["admin"]["metrics_address"]


def test_pod_resources_bench_is_the_one_described(session: DocSession) -> None:
    """bench/pod_resources.py's --help has the --rate and the wrk run the doc describes."""
    # the benchmark itself is not run here (15 s of load, wrk on a shared machine)
    (command,) = shell_commands(walkthrough(DOC, "kubernetes-resources")[0])
    rate = re.search(r"#\s*--rate (\d+)", command)
    assert rate, command
    help_command = re.sub(r"\s*#.*$", " --help", command)
    code, out = session.shell(f"cd {REPO} && {help_command}")
    assert code == 0, out
    text = " ".join(out.split())
    assert f"--rate RATE calls/s one pod is sized for (CPU request; {rate[1]})" in text, out
    wrk = re.search(r"`wrk -t1 -c(\d+) -d(\d+)s`", section(DOC, "Resources"))
    assert wrk, "the doc no longer says which wrk run it measures"
    assert f"wrk connections ({wrk[1]})" in text and f"wrk seconds ({wrk[2]})" in text, out


def test_image_md_security_context_is_the_injected_one() -> None:
    """image.md's securityContext is the one inject gives the container (native and classic)."""
    (block,) = walkthrough("docs/image.md", "image-security-context")
    shown = yaml.safe_load(block.text)["securityContext"]
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    assert sidecar_container(deployment)["securityContext"] == shown
    # the classic example is a JSON patch whose value is the pod template
    (patch,) = yaml.safe_load((REPO / "k8s/examples/classic/classic-pod-template.yaml").read_text())
    classic = {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": patch["value"]},
    }
    assert sidecar_container(classic, native=False)["securityContext"] == shown
