"""nginx ``grpc_pass`` as a peer of the gRPC benchmark: its config, and starting it.

What it is: the reference ``bench/grpc_proxy.py`` measures the sidecar's gRPC port against, the
one the project's CPU targets are stated beside. nginx listens for cleartext HTTP/2 with prior
knowledge (as gRPC clients speak it) and proxies every call with ``grpc_pass`` to the echo
upstream over a keep-alive pool of HTTP/2 connections. One worker, pinned to the proxy's core,
no access log; timeouts, stream and request limits set so that nothing the workloads do is cut
or recycled mid-run.

What it is not: a tuned nginx. Apart from those limits it runs Debian's nginx with its defaults
(buffers, HTTP/2 windows). nginx does not multiplex calls on an upstream connection: each call
in flight holds one, so the pool is sized to the most calls any workload keeps in flight, so
that no call pays for a new connection once the run is warm.

It reuses ``http_proxy.py``'s nginx start-up (the common ``http`` block, temp paths, ``-t``
check first) so both benchmarks run nginx the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import http_proxy as hp

#: nginx >= 1.25.1 takes ``http2 on;``; before, ``listen ... http2`` (deprecated since then)
HTTP2_ON_SINCE = (1, 25, 1)
#: the upstream pool's size when the workloads keep fewer calls in flight
MIN_KEEPALIVE = 64
#: long enough for any bidi stream of the benchmark; a timeout would show as a failed call
TIMEOUT = "300s"

SERVER = """\
    upstream echo_upstream {{
        server {upstream};
        keepalive {keepalive};
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {listen} backlog=4096{listen_http2};
{http2_on}\
        http2_max_concurrent_streams 1024;
        client_max_body_size 0;
        client_body_timeout {timeout};
        location / {{
            grpc_pass grpc://echo_upstream;
            grpc_read_timeout {timeout};
            grpc_send_timeout {timeout};
        }}
    }}"""


def binary() -> str | None:
    """The nginx executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found


def version(nginx: str) -> tuple[int, ...]:
    """nginx's version from ``nginx -v`` (it prints ``nginx version: nginx/1.22.1`` on stderr)."""
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    found = re.search(r"nginx/(\d+(?:\.\d+)*)", out.stderr + out.stdout)
    if found is None:
        raise RuntimeError(f"cannot read the version from `{nginx} -v`: {out.stderr.strip()}")
    return tuple(int(part) for part in found.group(1).split("."))


def server_block(listen: str, upstream: str, keepalive: int, nginx_version: tuple[int, ...]) -> str:
    """The ``upstream`` and ``server`` blocks: HTTP/2 in, ``grpc_pass`` with keep-alive out."""
    http2_on = nginx_version >= HTTP2_ON_SINCE
    return SERVER.format(
        listen=listen,
        upstream=upstream,
        keepalive=max(MIN_KEEPALIVE, keepalive),
        listen_http2="" if http2_on else " http2",
        http2_on="        http2 on;\n" if http2_on else "",
        timeout=TIMEOUT,
    )


def start(
    procs: hp.Processes, tmp: Path, listen: str, upstream: str, in_flight: int, core: int
) -> tuple[subprocess.Popen[bytes], list[int], Path]:
    """Start nginx pinned to ``core``: its master, its one worker's pid, its error log.

    Raises RuntimeError when nginx is missing, its config is refused, or no worker appears.
    """
    nginx = binary()
    if nginx is None:
        raise RuntimeError("nginx not found: apt-get install -y nginx")
    body = server_block(listen, upstream, in_flight, version(nginx))
    master, error_log = hp.start_nginx(procs, tmp, "nginx", body, core)
    return master, hp.nginx_workers(master.pid), error_log
