"""The sidecar's own HTTP/2 core: a sans-I/O connection state machine (RFC 9113) for both roles,
written for mypyc to replace the ``h2`` library on the gRPC data path.

Bytes go in (:meth:`.connection.Connection.receive_data`, which returns events) and come out
(:meth:`.connection.Connection.data_to_send`); the caller owns the socket, the calls and their
tasks. The API is a lean subset of ``h2``'s, so a front written for ``h2`` switches with small
edits: frames (:mod:`.frames`), events (:mod:`.events`), errors (:mod:`.errors`), HPACK
(:mod:`.hpack`) and header checks (:mod:`.header_rules`).

It is not a general HTTP/2 library: no server push, no priority scheduling (PRIORITY is parsed
and ignored), no h2c upgrade, no string headers (headers are ``bytes`` pairs), no logging.
Nothing is imported here, so importing a submodule stays cheap.
"""
