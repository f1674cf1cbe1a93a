"""Metrics, logs and traces of the sidecar."""
