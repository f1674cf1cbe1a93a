"""Rewrite the manifests of k8s/ that `sidecar inject` makes, after its spec changed.

    .venv/bin/python k8s/regenerate.py

base/deployment.yaml, examples/job/job.yaml and examples/classic/classic-pod-template.yaml are
inject's output for the apps in tests/fixtures/k8s/ (tests/unit/test_k8s_inject.py fails when
they differ). Each file keeps its leading comment block; the rest is written anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sidecar.k8s.annotations import Defaults
from sidecar.k8s.inject import inject_stream
from sidecar.k8s.pod import DEFAULT_IMAGE
from sidecar.k8s.stream import dump_document, split_documents

K8S = Path(__file__).resolve().parent
FIXTURES = K8S.parent / "tests" / "fixtures" / "k8s"


def injected(app: str, native: bool) -> Any:
    defaults = Defaults(image=DEFAULT_IMAGE, config_map="sidecar", native=native)
    text = inject_stream((FIXTURES / app).read_text(), app, defaults).text
    return split_documents(text, app)[0].data


def write(target: str, data: Any) -> None:
    path = K8S / target
    first = split_documents(path.read_text(), target)[0]
    path.write_text(dump_document(first, data))
    print(f"wrote k8s/{target}")


def main() -> None:
    write("base/deployment.yaml", injected("web-app.yaml", native=True))
    write("examples/job/job.yaml", injected("report-job.yaml", native=True))
    template = injected("web-app.yaml", native=False)["spec"]["template"]
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    write("examples/classic/classic-pod-template.yaml", patch)


if __name__ == "__main__":
    main()
