"""Metrics and logs of the sidecar (tracing joins them in a later issue)."""
