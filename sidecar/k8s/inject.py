"""``sidecar inject``'s core: add the sidecar to every pod template of a YAML stream.

Like ``linkerd inject`` and ``istioctl kube-inject``: each Pod, Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job and CronJob (also inside a ``kind: List``) gets the container and
volumes of :mod:`.pod`, as a native sidecar (an init container with ``restartPolicy: Always``)
or, with ``native=False``, as the first regular container. Every other document, and every
document this leaves as it was (opted out, or already injected the same way), is written back as
the exact text it came as (:mod:`.stream`).

Injecting twice is injecting once: the pod template's ``sidecar.io/status`` annotation records
what was added, and a second run removes exactly that before adding it again (which also
applies a changed option or annotation, such as a new image). A problem (not YAML, no pod
template, a name or port already taken, a pod on the node's network, a bad annotation) is an
:class:`InjectError` naming the document (its index, first line, kind and name) and the key
path; nothing is written then.
"""

from __future__ import annotations

__all__ = ["WORKLOADS", "InjectError", "Injected", "inject_stream"]

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from ..version import installed_version
from .annotations import INBOUND_PORT, INJECT, METRICS_PORT, STATUS, AnnotationError, Defaults
from .annotations import read_spec as read_annotations
from .pod import (
    CONTAINER_NAME,
    LOOPBACK_PORTS,
    SidecarSpec,
    sidecar_container,
    sidecar_volumes,
)
from .stream import Document, StreamError, dump_document, split_documents

Path = tuple[str, ...]


@dataclass(frozen=True)
class Workload:
    """Where a kind keeps its pod: the metadata holding annotations (outermost first, the pod
    template's last) and the pod spec."""

    groups: tuple[str, ...]  # API groups of apiVersion ("" is the core group)
    metadata: tuple[Path, ...]
    pod_spec: Path


_TEMPLATE = Workload(
    ("apps", "extensions"),
    (("metadata",), ("spec", "template", "metadata")),
    ("spec", "template", "spec"),
)
WORKLOADS: dict[str, Workload] = {
    "Pod": Workload(("",), (("metadata",),), ("spec",)),
    "Deployment": _TEMPLATE,
    "StatefulSet": _TEMPLATE,
    "DaemonSet": _TEMPLATE,
    "ReplicaSet": _TEMPLATE,
    "Job": Workload(("batch",), _TEMPLATE.metadata, _TEMPLATE.pod_spec),
    "CronJob": Workload(
        ("batch",),
        (
            ("metadata",),
            ("spec", "jobTemplate", "metadata"),
            ("spec", "jobTemplate", "spec", "template", "metadata"),
        ),
        ("spec", "jobTemplate", "spec", "template", "spec"),
    ),
}
_COMPLETING = {"Job", "CronJob"}


class InjectError(ValueError):
    """Input ``sidecar inject`` cannot use; the message says which document, where and why."""


class _Problem(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class Injected:
    """The output stream, warnings for stderr (a pod that can never complete...), and the
    images the sidecars it wrote use."""

    text: str
    warnings: list[str] = field(default_factory=list)
    images: set[str] = field(default_factory=set)


def inject_stream(text: str, source: str, defaults: Defaults) -> Injected:
    """Every workload of ``text`` with the sidecar added; InjectError names a bad document."""
    try:
        documents = split_documents(text, source)
    except StreamError as e:
        raise InjectError(str(e)) from None
    out = Injected(text="")
    pieces: list[str] = []
    index = 0
    for document in documents:
        if document.data is None:  # comments only, or an empty document
            pieces.append(document.text)
            continue
        index += 1
        pieces.append(_document(document, index, source, defaults, out))
    out.text = "".join(pieces)
    return out


def _label(obj: Any) -> str:
    if not isinstance(obj, dict):
        return type(obj).__name__
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{obj.get('kind', '(no kind)')} {name if isinstance(name, str) else '(no name)'}"


def _document(
    document: Document, index: int, source: str, defaults: Defaults, out: Injected
) -> str:
    where = f"{source}: document {index} (line {document.line}, {_label(document.data)})"
    data = copy.deepcopy(document.data)
    notes: list[str] = []
    try:
        _object(data, "", defaults, notes, out.images)
    except _Problem as e:
        raise InjectError(f"{where}: {e.path}: {e.reason}") from None
    out.warnings.extend(f"{where}: {note}" for note in notes)
    return document.text if data == document.data else dump_document(document, data)


def _object(obj: Any, prefix: str, defaults: Defaults, notes: list[str], images: set[str]) -> None:
    if not isinstance(obj, dict) or not all(
        isinstance(obj.get(k), str) for k in ("apiVersion", "kind")
    ):
        raise _Problem(
            prefix.rstrip(".") or "(document)",
            "not a Kubernetes object: a mapping with apiVersion and kind",
        )
    kind, group = obj["kind"], obj["apiVersion"].rpartition("/")[0]
    if kind == "List" or (kind.endswith("List") and isinstance(obj.get("items"), list)):
        items = obj.get("items")
        if not isinstance(items, list):
            raise _Problem(f"{prefix}items", "a List holds its objects in a list under items")
        for i, item in enumerate(items):
            _object(item, f"{prefix}items[{i}].", defaults, notes, images)
        return
    workload = WORKLOADS.get(kind)
    if workload is not None and group in workload.groups:
        _workload(obj, kind, workload, prefix, defaults, notes, images)


def _at(obj: dict[str, Any], path: Path, prefix: str) -> dict[str, Any] | None:
    """The mapping at ``path``, or None if a key is missing; a non-mapping is a problem."""
    node: Any = obj
    for depth, key in enumerate(path):
        node = node.get(key)
        if node is None:
            return None
        if not isinstance(node, dict):
            raise _Problem(prefix + ".".join(path[: depth + 1]), "expected a mapping")
    return node  # type: ignore[no-any-return]


def _mappings(value: Any, path: str, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Problem(path, f"expected a list of {what}")
    return value


def _insert(mapping: dict[str, Any], key: str, value: Any, before: str | None) -> None:
    """Add ``key`` in front of ``before`` (or first, if None), keeping the other keys' order."""
    items = list(mapping.items())
    at = next((i for i, (k, _) in enumerate(items) if k == before), len(items))
    items.insert(0 if before is None else at, (key, value))
    mapping.clear()
    mapping.update(items)


def _workload(
    obj: dict[str, Any],
    kind: str,
    workload: Workload,
    prefix: str,
    defaults: Defaults,
    notes: list[str],
    images: set[str],
) -> None:
    pod_path = prefix + ".".join(workload.pod_spec)
    pod = _at(obj, workload.pod_spec, prefix)
    if pod is None or not pod.get("containers"):
        raise _Problem(
            f"{pod_path}.containers",
            f"missing: a {kind} without a pod template (and its containers) cannot get a sidecar",
        )
    sources = []
    for path in workload.metadata:
        meta = _at(obj, path, prefix)
        notes_path = prefix + ".".join((*path, "annotations"))
        found = meta.get("annotations") if meta is not None else None
        if found is not None and not isinstance(found, dict):
            raise _Problem(notes_path, "expected a mapping of annotations")
        sources.append((notes_path, found or {}))
    try:
        spec = read_annotations(sources, defaults)
    except AnnotationError as e:
        raise _Problem(e.path, e.reason) from None
    if spec is None:
        return  # opted out: the document stays as it is
    if pod.get("hostNetwork") is True:
        raise _Problem(
            f"{pod_path}.hostNetwork",
            "a pod in the node's network namespace would bind the sidecar's loopback egress, "
            "which calls upstreams with its credentials, on the node itself, reachable by every "
            "process there, and two such pods on one node collide on its ports: opt this "
            f'workload out with {INJECT}: "false"',
        )
    images.add(spec.image)
    template_path = workload.metadata[-1]
    parent = _at(obj, template_path[:-1], prefix)
    assert parent is not None  # the pod spec is its sibling
    if "metadata" not in parent:
        _insert(parent, "metadata", {}, before=None)
    annotations = parent["metadata"].setdefault("annotations", {})
    _remove_previous(pod, annotations, sources[-1][0], pod_path)
    _check_free(pod, spec, pod_path)
    _add(pod, spec, annotations)
    if not spec.native and (
        kind in _COMPLETING or pod.get("restartPolicy") in ("Never", "OnFailure")
    ):
        notes.append(
            "a classic sidecar container keeps running after the app exits, so this pod never "
            "completes: leave out --legacy (native sidecars, Kubernetes >= 1.29)"
        )


def _remove_previous(
    pod: dict[str, Any], annotations: dict[str, Any], notes_path: str, pod_path: str
) -> None:
    """Take out what an earlier ``sidecar inject`` added, as its status annotation lists it."""
    raw = annotations.get(STATUS)
    if raw is None:
        return
    try:
        status = json.loads(raw)
        volumes = status["volumes"]
        if not isinstance(volumes, list) or not all(isinstance(v, str) for v in volumes):
            raise TypeError
    except (TypeError, ValueError, KeyError):
        raise _Problem(
            f'{notes_path}["{STATUS}"]', "not written by sidecar inject: remove it"
        ) from None
    for key in ("initContainers", "containers", "volumes"):
        items = _mappings(pod.get(key), f"{pod_path}.{key}", key)
        drop = set(volumes) if key == "volumes" else {CONTAINER_NAME}
        kept = [item for item in items if item.get("name") not in drop]
        if key != "containers" and not kept and key in pod:
            del pod[key]  # it was there only for us
        elif key in pod:
            pod[key] = kept


def _check_free(pod: dict[str, Any], spec: SidecarSpec, pod_path: str) -> None:
    """The container name, the volume names and the sidecar's ports are not already taken."""
    # the loopback ports first: an annotation may move the metrics or inbound port onto one
    ports = {
        **{
            port: f"port ({what}, set in its config): move the app's port, or opt out with "
            f'{INJECT}: "false"'
            for port, what in LOOPBACK_PORTS.items()
        },
        spec.metrics_port: f"port: give the sidecar another one with the {METRICS_PORT} annotation",
        spec.inbound_port: f"port: give the sidecar another one with the {INBOUND_PORT} annotation",
    }
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(_mappings(pod.get(key), f"{pod_path}.{key}", "containers")):
            where = f"{pod_path}.{key}[{i}]"
            if container.get("name") == CONTAINER_NAME:
                raise _Problem(
                    f"{where}.name",
                    f'a container named "{CONTAINER_NAME}" is already here, not added by '
                    f"sidecar inject (no {STATUS} annotation): rename it, or opt out with "
                    f'{INJECT}: "false"',
                )
            for j, port in enumerate(_mappings(container.get("ports"), f"{where}.ports", "ports")):
                number = port.get("containerPort")
                if number in ports:
                    raise _Problem(
                        f"{where}.ports[{j}].containerPort",
                        f"{number} is the sidecar's {ports[number]}",
                    )
    ours = {volume["name"] for volume in sidecar_volumes(spec)}
    for i, volume in enumerate(_mappings(pod.get("volumes"), f"{pod_path}.volumes", "volumes")):
        if volume.get("name") in ours:
            raise _Problem(
                f"{pod_path}.volumes[{i}].name",
                f"the sidecar's volume {volume['name']!r} is already here, not added by sidecar "
                f"inject (no {STATUS} annotation): rename it",
            )


def _add(pod: dict[str, Any], spec: SidecarSpec, annotations: dict[str, Any]) -> None:
    container = sidecar_container(spec)
    if spec.native:
        if "initContainers" not in pod:
            _insert(pod, "initContainers", [], before="containers")
        # first: the app's own init containers may already call through the sidecar
        pod["initContainers"].insert(0, container)
    else:
        # first: the kubelet starts containers in order, each after the previous one's
        # postStart hook returned, and the sidecar's hook waits for /readyz
        pod["containers"].insert(0, container)
    volumes = sidecar_volumes(spec)
    pod.setdefault("volumes", []).extend(volumes)
    status = {
        "version": installed_version(),
        "mode": "native" if spec.native else "classic",
        "volumes": [volume["name"] for volume in volumes],
    }
    annotations[STATUS] = json.dumps(status, separators=(",", ":"))
