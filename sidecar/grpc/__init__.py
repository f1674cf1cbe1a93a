"""gRPC: the app-facing listener, the upstream adapter, and the sidecar's own gRPC services.

The contract they share (how a gRPC call is an :class:`~sidecar.exchange.Exchange`) is
:mod:`sidecar.grpc.wire`.
"""
