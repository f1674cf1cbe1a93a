"""``scripts/gen-proto --check``: the checked-in generated gRPC code matches its .proto files, and
the check catches a generated file that drifted (run on a copy; the repository is never touched)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")


def copy_of_the_repository(to: Path) -> Path:
    """The script, every .proto and every generated file, at their places under ``to``."""
    (to / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "gen-proto", to / "scripts" / "gen-proto")
    wanted: set[Path] = set()
    for top in ("proto", "sidecar", "tests"):
        for pattern in ("*.proto", *GENERATED):
            wanted.update((ROOT / top).rglob(pattern))
    for path in wanted:
        if "build" in path.relative_to(ROOT).parts:
            continue
        target = to / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return to


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "gen-proto"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )


def test_the_checked_in_generated_code_is_up_to_date() -> None:
    """Whoever edits a .proto regenerates; the test command fails otherwise."""
    done = check(ROOT)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


def test_a_drifted_generated_file_fails_the_check_and_is_named(tmp_path: Path) -> None:
    """A hand edit, a missing file or an orphan from a deleted .proto each fail, by name."""
    root = copy_of_the_repository(tmp_path)
    assert check(root).returncode == 0

    edited = root / "sidecar" / "v1" / "admin_pb2.py"
    edited.write_text(edited.read_text() + "# edited by hand\n")
    (root / "sidecar" / "v1" / "admin_pb2.pyi").unlink()
    (root / "sidecar" / "v1" / "old_pb2.py").write_text("# from a .proto since deleted\n")
    done = check(root)
    assert done.returncode == 1
    assert "sidecar/v1/admin_pb2.py (stale)" in done.stderr
    assert "sidecar/v1/admin_pb2.pyi (missing)" in done.stderr
    assert "sidecar/v1/old_pb2.py (no .proto generates it)" in done.stderr
    assert "sidecar/v1/admin_pb2_grpc.py" not in done.stderr  # untouched, so not named


def test_regenerating_repairs_what_the_check_named(tmp_path: Path) -> None:
    """``scripts/gen-proto`` without ``--check`` writes back exactly what protoc generates."""
    root = copy_of_the_repository(tmp_path)
    edited = root / "tests" / "grpc_echo" / "echo_pb2_grpc.py"
    edited.write_text("# stale\n")
    assert check(root).returncode == 1
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen-proto")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["gen-proto: wrote tests/grpc_echo/echo_pb2_grpc.py"]
    assert edited.read_bytes() == (ROOT / "tests" / "grpc_echo" / "echo_pb2_grpc.py").read_bytes()
    assert check(root).returncode == 0
