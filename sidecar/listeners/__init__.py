"""Listeners: the ports calls arrive on (HTTP/1.1 egress now; gRPC and inbound later)."""
