"""``sidecar inject``: add the sidecar to every workload of a Kubernetes YAML stream.

::

    sidecar inject [-f FILE|-] [--legacy] [--config-map NAME] [--image IMAGE]

Reads FILE (or stdin with ``-``, the default) and writes the whole stream to stdout, workloads
injected and everything else as it was; warnings go to stderr (among them, once, that the
default image ``sidecar:<version>`` is a bare name to replace with ``--image``). Exit codes: 0
written, 2 the input or an option was refused (the reason on stderr, naming the document and
key path, and nothing on stdout). Typical use:
``kubectl kustomize . | sidecar inject | kubectl apply -f -``.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

import argparse
import sys

from .annotations import CONFIG_MAP, IMAGE, AnnotationError, Defaults, read_spec
from .inject import InjectError, inject_stream
from .pod import DEFAULT_CONFIG_MAP, DEFAULT_IMAGE


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``inject`` to the ``sidecar`` parser."""
    inject = sub.add_parser(
        "inject",
        help="add the sidecar to every workload of a Kubernetes YAML stream (to stdout)",
        description="Add the sidecar to every Pod, Deployment, StatefulSet, DaemonSet, "
        "ReplicaSet, Job and CronJob of a YAML stream; other documents pass through unchanged. "
        'Per workload: sidecar.io/inject: "false" opts out, sidecar.io/* annotations override '
        "the options (docs/kubernetes.md).",
    )
    inject.add_argument(
        "-f", "--filename", default="-", metavar="FILE", help="the manifests (default: - stdin)"
    )
    inject.add_argument(
        "--legacy",
        action="store_true",
        help="the classic layout: the sidecar as the first regular container with a postStart "
        "hook (clusters older than 1.29); default: a native sidecar (an init container with "
        "restartPolicy: Always)",
    )
    inject.add_argument(
        "--config-map",
        default=DEFAULT_CONFIG_MAP,
        metavar="NAME",
        help=f"the ConfigMap holding sidecar.yaml, mounted at /etc/sidecar "
        f"(default: {DEFAULT_CONFIG_MAP}; the {CONFIG_MAP} annotation wins)",
    )
    inject.add_argument(
        "--image",
        help=f"the sidecar image as your registry serves it (default: {DEFAULT_IMAGE}, a bare "
        f"name no registry serves; the {IMAGE} annotation wins)",
    )


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    with open(name, encoding="utf-8") as f:
        return f.read()


def run(args: argparse.Namespace) -> int:
    """Inject and print; on any problem print it to stderr, write nothing, and return 2."""
    source = "<stdin>" if args.filename == "-" else args.filename
    image = args.image or DEFAULT_IMAGE
    defaults = Defaults(image=image, config_map=args.config_map, native=not args.legacy)
    try:
        # the options are checked like the annotations they stand in for
        read_spec(
            [("--image", {IMAGE: image}), ("--config-map", {CONFIG_MAP: args.config_map})],
            defaults,
        )
    except AnnotationError as e:
        print(f"error: {e.path.split('[')[0]}: {e.reason}", file=sys.stderr)
        return 2
    try:
        text = _read(args.filename)
        result = inject_stream(text, source, defaults)
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: {source}: cannot be read: {e}", file=sys.stderr)
        return 2
    except InjectError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.image is None and DEFAULT_IMAGE in result.images:
        # once per run, not per workload: it is one decision, made on the command line
        print(
            f"warning: the sidecar image is the bare name {DEFAULT_IMAGE}, which no registry "
            f"serves: push the image to your registry and pass --image (for example --image "
            f"registry.example.com/{DEFAULT_IMAGE}), or set the {IMAGE} annotation",
            file=sys.stderr,
        )
    sys.stdout.write(result.text)
    sys.stdout.flush()
    return 0
