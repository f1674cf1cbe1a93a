"""The sidecar's part of a pod: its container, its volumes, and the values they are made from.

This is the one source of truth for what ``sidecar inject`` adds and what ``k8s/base`` ships (a
test checks that the base Deployment is exactly what :func:`sidecar_container` and
:func:`sidecar_volumes` make for it). It builds plain dicts in the Kubernetes API's shape and key
order; it does not read manifests, annotations or options (:mod:`.annotations`, :mod:`.inject`).

What the container relies on in the image (docs/image.md): ENTRYPOINT ``sidecar run``, uid/gid
65532, a read-only root file system with a writable ``/tmp``, and ``python`` on the PATH (the
classic layout's postStart hook).
"""

from __future__ import annotations

__all__ = [
    "CONFIG_DIR",
    "CONFIG_FILE",
    "CONTAINER_NAME",
    "DEFAULT_CONFIG_MAP",
    "DEFAULT_IMAGE",
    "DEFAULT_INBOUND_PORT",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_RESOURCES",
    "FIXED_ENV",
    "LOOPBACK_PORTS",
    "RUN_AS",
    "SECRETS_DIR",
    "Resources",
    "SecretEnv",
    "SidecarSpec",
    "secret_volume_name",
    "sidecar_container",
    "sidecar_volumes",
]

from dataclasses import dataclass, field
from typing import Any

from ..version import installed_version

#: The injected container's name, in ``initContainers`` (native) or first in ``containers``.
CONTAINER_NAME = "sidecar"
#: The ConfigMap is mounted as this whole directory, never with subPath: the kubelet updates a
#: directory mount by swapping its ``..data`` symlink, which the sidecar's file poll follows, and
#: never updates a subPath mount at all.
CONFIG_DIR = "/etc/sidecar"
CONFIG_FILE = f"{CONFIG_DIR}/sidecar.yaml"
#: Each Secret named in ``sidecar.io/secret-volumes`` is mounted at ``SECRETS_DIR/<name>``.
SECRETS_DIR = "/var/run/secrets/sidecar"
DEFAULT_CONFIG_MAP = "sidecar"
#: ``admin.metrics_address``'s port: /metrics, /healthz and /readyz for the kubelet and
#: Prometheus. 15030 is clear of every port an Istio sidecar uses in the same pod (15000, 15001,
#: 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090).
DEFAULT_METRICS_PORT = 15030
DEFAULT_INBOUND_PORT = 15006
#: The loopback ports of the config's defaults (and the shipped configs): not in the pod spec,
#: but in the pod's one network namespace, so an app container cannot declare them either.
LOOPBACK_PORTS = {15000: "admin", 15001: "HTTP egress", 15002: "gRPC egress"}
RUN_AS = 65532
#: Variables the container always gets; ``sidecar.io/secret-env`` may not name them. The two
#: ports let a config say ``metrics_address: "0.0.0.0:${SIDECAR_METRICS_PORT:-15030}"``, so the
#: port the probes use and the port the sidecar binds come from the same annotation.
FIXED_ENV = (
    "POD_NAME",
    "POD_UID",
    "POD_NAMESPACE",
    "NODE_NAME",
    "SIDECAR_METRICS_PORT",
    "SIDECAR_INBOUND_PORT",
)


#: ``sidecar:<version>``, the tag the project's Dockerfile builds (``latest`` from a source tree
#: that was never installed).
_VERSION = installed_version()
DEFAULT_IMAGE = f"sidecar:{'latest' if _VERSION == 'unknown' else _VERSION}"


@dataclass(frozen=True)
class Resources:
    """Kubernetes quantities; a ``None`` limit is left out (no limit)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str | None
    memory_limit: str | None

    def as_dict(self) -> dict[str, Any]:
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {
            name: value
            for name, value in (("cpu", self.cpu_limit), ("memory", self.memory_limit))
            if value is not None
        }
        return {"requests": requests, "limits": limits} if limits else {"requests": requests}


# Measured with bench/pod_resources.py (2026-12-06, 2-core machine, nothing else running; the
# sidecar alone on one core, wrk -t1 -c50 -d10s on the other): idle RSS 89.6 MiB, idle CPU
# 2 millicores, 0.064 CPU s per 1000 calls, peak RSS under load 97 MiB. The CPU request is sized
# for 100 calls/s per pod (--rate); the CPU limit is one core, since the data path is one event
# loop and a lower limit would throttle it. docs/kubernetes.md says how each is derived
# (tests/unit/test_k8s_inject.py keeps k8s/ equal to these).
DEFAULT_RESOURCES = Resources(
    cpu_request="10m", memory_request="128Mi", cpu_limit="1", memory_limit="224Mi"
)


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable read from one key of a Secret (``NAME=secret/key``)."""

    name: str
    secret: str
    key: str


@dataclass(frozen=True)
class SidecarSpec:
    """Everything the injected container and volumes depend on."""

    image: str = DEFAULT_IMAGE
    config_map: str = DEFAULT_CONFIG_MAP
    metrics_port: int = DEFAULT_METRICS_PORT
    inbound_port: int = DEFAULT_INBOUND_PORT
    resources: Resources = DEFAULT_RESOURCES
    secret_volumes: tuple[str, ...] = ()
    secret_env: tuple[SecretEnv, ...] = field(default=())
    #: ``True``: an init container with ``restartPolicy: Always`` (Kubernetes >= 1.29);
    #: ``False``: the classic layout, the first regular container with a postStart hook.
    native: bool = True


def secret_volume_name(secret: str) -> str:
    return f"sidecar-secret-{secret}"


def sidecar_volumes(spec: SidecarSpec) -> list[dict[str, Any]]:
    """The pod volumes the container mounts, in the order :func:`sidecar_container` mounts them."""
    volumes: list[dict[str, Any]] = [
        {"name": "sidecar-config", "configMap": {"name": spec.config_map}},
        # /tmp on a read-only root: small and in memory (it counts against the memory limit)
        {"name": "sidecar-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    for secret in spec.secret_volumes:
        volumes.append({"name": secret_volume_name(secret), "secret": {"secretName": secret}})
    return volumes


def _probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    # a fresh dict per probe: the YAML writer would otherwise share one object as an anchor
    return {
        "httpGet": {"path": path, "port": "sidecar-metrics"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


#: The classic layout's postStart hook. The kubelet starts ``containers`` one after another and
#: does not start the next one until this hook has returned, so the app starts after ``/readyz``
#: answered 200. Bounded by its own deadline: the kubelet puts none on exec hooks, and a hook
#: that fails (not ready in time) kills the sidecar container and lets the app start anyway.
_WAIT_READY = """\
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:{port}/readyz", timeout=1)
        sys.exit(0)
    except Exception:
        if time.monotonic() > deadline:
            sys.exit("sidecar: /readyz did not answer 200 within 60s")
        time.sleep(0.2)
"""


def _env(spec: SidecarSpec) -> list[dict[str, Any]]:
    def field_ref(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [
        # the pod's identity on every span (docs/observability.md)
        field_ref("POD_NAME", "metadata.name"),
        field_ref("POD_UID", "metadata.uid"),
        field_ref("POD_NAMESPACE", "metadata.namespace"),
        field_ref("NODE_NAME", "spec.nodeName"),
        {"name": "SIDECAR_METRICS_PORT", "value": str(spec.metrics_port)},
        {"name": "SIDECAR_INBOUND_PORT", "value": str(spec.inbound_port)},
    ]
    for item in spec.secret_env:
        ref = {"secretKeyRef": {"name": item.secret, "key": item.key}}
        env.append({"name": item.name, "valueFrom": ref})
    return env


def sidecar_container(spec: SidecarSpec) -> dict[str, Any]:
    """The container, native (``restartPolicy: Always``) or classic (a postStart hook)."""
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "args": ["-c", CONFIG_FILE],
    }
    if spec.native:
        container["restartPolicy"] = "Always"
    container["ports"] = [
        {"name": "sidecar-metrics", "containerPort": spec.metrics_port, "protocol": "TCP"},
        {"name": "sidecar-mtls", "containerPort": spec.inbound_port, "protocol": "TCP"},
    ]
    container["env"] = _env(spec)
    container["resources"] = spec.resources.as_dict()
    # native: the kubelet starts the next container once this probe passed; both layouts: the
    # liveness probe waits for it, so a slow start (a token prefetch) is not a restart
    container["startupProbe"] = _probe("/readyz", period=1, timeout=1, failures=60)
    container["readinessProbe"] = _probe("/readyz", period=5, timeout=2, failures=2)
    # generous: the probes share the event loop with the calls, and a sidecar slow under load
    # is better left running than restarted with every connection it holds
    container["livenessProbe"] = _probe("/healthz", period=10, timeout=3, failures=3)
    if not spec.native:
        script = _WAIT_READY.replace("{port}", str(spec.metrics_port))
        container["lifecycle"] = {"postStart": {"exec": {"command": ["python", "-c", script]}}}
    container["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    mounts: list[dict[str, Any]] = [
        {"name": "sidecar-config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "sidecar-tmp", "mountPath": "/tmp"},  # noqa: S108 (a private emptyDir)
    ]
    for secret in spec.secret_volumes:
        mounts.append(
            {
                "name": secret_volume_name(secret),
                "mountPath": f"{SECRETS_DIR}/{secret}",
                "readOnly": True,
            }
        )
    container["volumeMounts"] = mounts
    return container
