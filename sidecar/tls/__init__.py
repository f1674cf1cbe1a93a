"""mTLS and workload identity (SPIFFE): certificates, contexts, rotation, and the inbound filters.

- :mod:`.spiffe`: SPIFFE IDs, allow-list patterns, reading a verified peer's ID;
- :mod:`.certs` / :mod:`.certinfo`: making a CA and workload certificates (``sidecar certs``),
  reading a certificate's details;
- :mod:`.contexts` / :mod:`.material`: the ``SSLContext`` builders (inbound server, upstream
  client with an optional SPIFFE check) and the material that follows rotated files;
- :mod:`.peer` / :mod:`.identity`: the inbound routes' filters (peer allow-list, identity header);
- :mod:`.expiry` / :mod:`.plugin`: the certificate expiry metric and warnings, as a built-in
  plugin; :mod:`.checks`: certificate files checked when a config is loaded; :mod:`.cli`: the
  ``sidecar certs`` commands.

The inbound listener itself is :mod:`sidecar.listeners.inbound`. Importing this package imports
nothing else: the config models use :mod:`.spiffe` alone.
"""
