"""Writing a new plugin distribution from the templates under ``templates/`` (package data).

A template is text with ``$name``-style fields (:class:`string.Template`: the generated Python
is full of ``{}``, which ``str.format`` would take for fields). ``templates/common/`` is what
every plugin gets (``pyproject.toml``, ``README.md``); ``templates/<kind>/package/`` becomes the
package ``sidecar_<name>/`` and ``templates/<kind>/tests/`` its tests, ``NAME`` in a file's name
replaced by the plugin's. ``readme-*.tmpl`` of a kind fill the README's kind-specific parts.

Not here: the command line (:mod:`.cli`); the servers generated tests may use
(:mod:`sidecar.testing`).
"""

from __future__ import annotations

__all__ = ["Scaffold", "ScaffoldRefused", "check_name", "render", "scaffold"]

import re
import string
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

#: a plugin name is its entry point, config section and registered name at once: lowercase,
#: starting with a letter, words joined by single '_' (the package is ``sidecar_<name>``)
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_MAX_NAME = 40

#: the registry each kind's plugin registers its name in (a built-in's name is taken)
_REGISTRY_OF = {
    "adapter": "adapters",
    "filter": "filters",
    "credentials": "credentials",
    "ratelimit-backend": "ratelimit_backends",
}


class ScaffoldRefused(Exception):
    """Nothing was written; the message says why."""


@dataclass(frozen=True)
class Scaffold:
    """What :func:`scaffold` wrote: the distribution's directory and its files."""

    root: Path
    files: tuple[Path, ...]


def check_name(name: str) -> None:
    """Raise :class:`ScaffoldRefused` unless ``name`` can be a plugin's name."""
    if len(name) > _MAX_NAME or not _NAME.match(name):
        raise ScaffoldRefused(
            f"plugin name {name[:60]!r}: use lowercase letters, digits and single '_' between "
            f"words, starting with a letter, at most {_MAX_NAME} characters (e.g. 'team_tags'); "
            f"the distribution becomes sidecar-<name>, the package sidecar_<name>"
        )


def _check_free(name: str, kind: str) -> None:
    """A built-in already registered under ``name`` would stop every sidecar loading the
    plugin (names are owned): refuse it now rather than in the first test run."""
    from ..plugins import make_plugin_host

    registries = make_plugin_host(load_entry_points=False).registries
    if name in getattr(registries, _REGISTRY_OF[kind]):
        what = kind.replace("-", " ")
        raise ScaffoldRefused(f"a built-in {what} is named {name!r}: choose another name")


def fields(name: str, kind: str) -> dict[str, str]:
    """The template fields of plugin ``name`` of ``kind``."""
    return {
        "name": name,
        "kind": kind,
        "package": f"sidecar_{name}",
        "distribution": f"sidecar-{name}",
        "header": "x-" + name.replace("_", "-"),
        "env": f"{name.upper()}_TOKEN",
    }


def render(text: str, values: dict[str, str], source: str) -> str:
    """``text`` with its fields filled; a field no value exists for names the template."""
    try:
        return string.Template(text).substitute(values)
    except (KeyError, ValueError) as e:
        raise RuntimeError(f"template {source}: bad field {e}") from None


def _walk(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """``(relative path, file)`` of every file under ``folder``, sorted."""
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        path = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_walk(entry, f"{path}/"))
        else:
            found.append((path, entry))
    return found


def _planned(name: str, kind: str) -> dict[str, str]:
    """Every file of the new distribution: relative path -> rendered text."""
    templates = resources.files("sidecar.kit") / "templates"
    values = fields(name, kind)
    kind_files = _walk(templates / kind)
    # the README's kind-specific parts are rendered first, then placed in the common README
    for part, entry in kind_files:
        if part.startswith("readme-"):
            key = part.removeprefix("readme-").split(".")[0]
            values[key] = render(entry.read_text("utf-8"), values, f"{kind}/{part}").rstrip("\n")
    files: dict[str, str] = {}
    for part, entry in [*_walk(templates / "common"), *kind_files]:
        if part.startswith("readme-") or not part.endswith(".tmpl"):
            continue
        target = part.removesuffix(".tmpl").replace("NAME", name)
        if target.startswith("package/"):
            target = values["package"] + target.removeprefix("package")
        files[target] = render(entry.read_text("utf-8"), values, part)
    return files


def scaffold(name: str, kind: str, directory: Path | None = None) -> Scaffold:
    """Write plugin ``name`` of ``kind`` into ``directory`` (default ``./sidecar-<name>``),
    which must not exist or be empty; nothing is written when it is refused."""
    check_name(name)
    if kind not in _REGISTRY_OF:
        raise ScaffoldRefused(f"no template for kind {kind!r} (one of {', '.join(_REGISTRY_OF)})")
    root = (directory or Path(f"sidecar-{name}")).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldRefused(f"{root} exists and is not empty: nothing was overwritten")
    _check_free(name, kind)
    planned = _planned(name, kind)
    written = []
    for relative, text in planned.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return Scaffold(root, tuple(written))
