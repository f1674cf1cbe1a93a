"""Generated code of the sidecar's own gRPC API (``proto/sidecar/v1/*.proto``).

Built by ``scripts/gen-proto``, never edited by hand; ``scripts/test`` fails when it is stale.
"""
