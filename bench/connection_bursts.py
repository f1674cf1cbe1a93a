"""RSS of a sidecar process through bursts of idle app connections.

    .venv/bin/python bench/connection_bursts.py [--rounds 9] [--connections 5000]

Starts ``sidecar run`` on a generated config (the echo upstream, private ports), then for each
round opens N idle connections to the HTTP port, holds them a second, closes them all, and
prints the sidecar's RSS at the peak and 1.5 s after the close. A process that frees what a
closed connection held stays flat from the second round on; one that keeps it grows round by
round. Needs N + a few hundred file handles (the script raises its own soft limit to the hard
one). Memory only: run it alone, it takes about 30 s.
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--connections", type=int, default=5000)
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < args.connections + 256:
        sys.exit(f"the hard limit on open files ({hard}) is below {args.connections + 256}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    http = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sidecar.yaml"
        cfg.write_text(
            f"admin: {{address: 127.0.0.1:{free_port()}}}\n"
            f"http: {{address: 127.0.0.1:{http}}}\n"
            f"grpc: {{address: 127.0.0.1:{free_port()}}}\n"
            "telemetry: {log_level: warning}\n"
            "upstreams: {echo: {adapter: echo}}\n"
        )
        exe = Path(sys.executable).parent / "sidecar"
        proc = subprocess.Popen(
            [str(exe), "run", "-c", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", http), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        sys.exit("the sidecar did not start")
                    time.sleep(0.1)
            time.sleep(1)
            print(f"idle: {rss_mb(proc.pid)} MB")
            for r in range(args.rounds):
                held = [
                    socket.create_connection(("127.0.0.1", http)) for _ in range(args.connections)
                ]
                time.sleep(1)
                peak = rss_mb(proc.pid)
                for s in held:
                    s.close()
                time.sleep(1.5)
                after = rss_mb(proc.pid)
                print(f"round {r + 1}: peak {peak} MB, after close {after} MB", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
