"""Kubernetes: ``sidecar inject`` and the sidecar's part of a pod spec.

- :mod:`.pod`: the container and volumes the sidecar needs (the one source of truth, which
  ``k8s/base`` is tested against);
- :mod:`.annotations`: the ``sidecar.io/*`` annotations a workload overrides them with;
- :mod:`.stream`: a YAML stream cut into documents that keep their exact text;
- :mod:`.inject`: adding the sidecar to every workload of a stream;
- :mod:`.cli`: the ``sidecar inject`` command.

Only runtime dependencies (PyYAML); no Kubernetes client, no cluster access.
"""
