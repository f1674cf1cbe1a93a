# The sidecar's container image: `docker build -t sidecar:0.1.0 .` (docs/image.md).
#
# Two stages on the same base. The first builds a wheel of the project, its data path compiled
# with mypyc (docs/compiled-build.md), and installs it, with its runtime dependencies and the
# `fast` extra (uvloop), into a venv at /opt/sidecar. The second is
# the base plus that venv and the default config: no compiler, no pip, no build tools, no caches.
# The venv's python is a link to the base's, which is why both stages must use the same BASE.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# For the build only: strip (extension modules from PyPI may carry their debug information:
# uvloop's is 12 of its 14 MB), and a C compiler and the Python headers for mypyc (a base whose
# python3 has no headers gets Debian's)
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        binutils gcc libc6-dev >/dev/null \
 && (python3 -c "import os, sysconfig; \
raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
     || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-dev >/dev/null) \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, read from pyproject.toml: this layer is reused until pyproject.toml changes,
# so a change to the code rebuilds only the wheel. Binary wheels only: the build stage has no
# compiler, and a dependency without a wheel for this platform should fail here, loudly.
# The runtime venv never gets pip or setuptools: the build venv's pip installs into it
# (`--python`). Extension modules lose their debug sections (each one imported afterwards, so a
# damaged one fails the build, not a call). Bytecode is compiled here, in unchecked-hash mode:
# valid whatever mtimes a copy gives the sources, so Python neither recompiles at each start nor
# tries to write on a read-only root.
COPY pyproject.toml ./
COPY build_support ./build_support
RUN python3 -m venv /opt/build \
 && python3 -m venv --without-pip /opt/sidecar \
 && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(p['build-system']['requires']), file=open('/tmp/build-requires.txt', 'w')); \
print('\n'.join(p['project']['dependencies'] + p['project']['optional-dependencies']['fast']), \
file=open('/tmp/requires.txt', 'w'))" \
 && /opt/build/bin/pip install -q -r /tmp/build-requires.txt wheel \
 && /opt/build/bin/python -c "import sys; sys.path.insert(0, 'build_support'); \
import sidecar_build; print('\n'.join(sidecar_build.compile_requirements()))" > /tmp/compile-requires.txt \
 && /opt/build/bin/pip install -q -r /tmp/compile-requires.txt \
 && /opt/build/bin/pip --python /opt/sidecar/bin/python install -q --no-compile \
        --only-binary=:all: -r /tmp/requires.txt \
 && find /opt/sidecar/lib -name '*.so' -not -path '*.libs/*' -exec strip --strip-debug '{}' + \
 && /opt/sidecar/bin/python -c "import importlib, pathlib, sysconfig; \
root = pathlib.Path(sysconfig.get_path('purelib')); \
[importlib.import_module('.'.join(so.relative_to(root).with_suffix('').with_suffix('').parts)) \
 for so in root.rglob('*.cpython-*.so')]" \
 && /opt/sidecar/bin/python -m compileall -q -j0 -o 2 --invalidation-mode unchecked-hash /opt/sidecar/lib \
 && rm -f /opt/sidecar/bin/activate* /opt/sidecar/bin/Activate.ps1 /tmp/*.txt

COPY README.md LICENSE setup.py ./
COPY sidecar ./sidecar
# The wheel is built with the build venv's setuptools and mypy (no isolated download per build),
# compiled or failing (SIDECAR_COMPILE=1: never a pure build by surprise), then installed with
# its dependencies and extra: pip finds them all satisfied by the layer above. The compiled
# modules lose their debug sections too, and --version must say the build is compiled.
RUN SIDECAR_COMPILE=1 /opt/build/bin/pip wheel -q --no-build-isolation --no-deps -w /tmp/wheels . \
 && /opt/build/bin/pip --python /opt/sidecar/bin/python install -q --no-compile \
        --only-binary=:all: "$(ls /tmp/wheels/sidecar-*.whl)[fast]" \
 && lib="$(/opt/sidecar/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && find "$lib/sidecar" "$lib"/sidecar__mypyc*.so -name '*.so' -exec strip --strip-debug '{}' + \
 && /opt/sidecar/bin/sidecar --version | grep -q 'compiled (mypyc)' \
 && /opt/sidecar/bin/python -m compileall -q -j0 -o 2 --invalidation-mode unchecked-hash \
        "$(/opt/sidecar/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/sidecar" \
 && rm -rf /tmp/wheels

FROM ${BASE}
# The version is the project's (pyproject.toml); scripts/build-image passes it from there.
ARG VERSION=0.1.0
# Where the source lives; scripts/build-image passes the git remote when there is one.
ARG SOURCE=""
# The official python images ship the standard library without bytecode: compile it once here
# (test suites and IDLE/Tk left out), or every start recompiles the modules it imports.
# Bytecode is for PYTHONOPTIMIZE=2 (below) only, as is the venv's: `.opt-2.pyc` files.
RUN python3 -m compileall -q -j0 -o 2 -x '/(site|dist)-packages/|/tests?/|idlelib|tkinter|turtledemo|lib2to3|ensurepip' \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
COPY --from=build /opt/sidecar /opt/sidecar
# The embedded default (echo upstream, loopback ports), so the image runs with no mount; a
# ConfigMap mounted at /etc/sidecar replaces the whole directory.
COPY sidecar/default.yaml /etc/sidecar/sidecar.yaml
# PYTHONOPTIMIZE=2 drops docstrings (and asserts) from the loaded modules: 2 MB less resident
# memory; nothing in the sidecar reads a docstring at run time (docs/image.md).
ENV PATH=/opt/sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONOPTIMIZE=2 \
    PYTHONUNBUFFERED=1
# Nothing is written at run time: the root filesystem may be read-only (/tmp as a tmpfs if a
# plugin needs scratch space). A numeric user, so runAsNonRoot can verify it without a passwd entry.
USER 65532:65532
# admin, HTTP egress, gRPC egress (these three on loopback only: the app shares the pod's
# network namespace), inbound mTLS, metrics port (docs/operations.md).
EXPOSE 15000 15001 15002 15006 15030
LABEL org.opencontainers.image.title="sidecar" \
      org.opencontainers.image.description="A lightweight service proxy: auth injection, mTLS, rate limits, retries, circuit breaking, tracing and metrics for the app beside it." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}"
# SIGTERM starts the graceful drain (shutdown.drain_timeout) and the process exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sidecar", "run"]
CMD ["-c", "/etc/sidecar/sidecar.yaml"]
