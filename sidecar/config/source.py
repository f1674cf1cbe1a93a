"""From config text to plain data: strict YAML, then ``${ENV}`` substitution.

YAML is read with two corrections to PyYAML's YAML 1.1 habits that bite config files:

- only ``true``/``false`` are booleans (YAML 1.2): ``on``, ``off``, ``yes``, ``no`` stay strings,
  so ``retry: {on: [503]}`` keeps its key and ``country: no`` means Norway;
- a key written twice in one mapping is an error naming both lines, never "the last one wins".

Substitution runs on the parsed data, in string values only (never keys), so a variable's value
cannot change the file's structure: ``${NAME}``, ``${NAME:-default}`` (the default when the
variable is unset or empty, as in a shell) and ``$${`` for a literal ``${``. What this module does
not do: validate the data against the models (that is :mod:`sidecar.config.loader`).
"""

from __future__ import annotations

__all__ = ["key_path", "read_data"]

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.scanner import ScannerError

from ..errors import ConfigError, ConfigProblem
from .types import show

# ``$${`` (escaped) | ``${NAME}`` | ``${NAME:-default}`` | any other ``${`` (malformed)
_REFERENCE = re.compile(
    r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{",
)
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: a config nests a few levels and holds a few thousand values. Past these bounds the file is an
#: accident or an attack: an alias inside itself nests without end, and aliases of aliases
#: ("billion laughs") expand exponentially once the data is walked.
MAX_DEPTH = 64
MAX_VALUES = 100_000


class _TooLarge(Exception):
    """The data nests deeper than ``MAX_DEPTH`` or expands past ``MAX_VALUES`` values."""

    def __init__(self, loc: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.loc = loc
        self.reason = reason


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and duplicate keys refused."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        # checked before merge keys (``<<: *base``) are flattened: overriding a merged key is
        # what merging is for, writing one key twice by hand is a mistake
        seen: dict[tuple[str, str], Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                first = seen.setdefault((key_node.tag, key_node.value), key_node)
                if first is not key_node:
                    raise ConstructorError(
                        None,
                        None,
                        f"the key {show(key_node.value)} is written twice in this mapping "
                        f"(first at line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's
        # refused as the scanner meets it: PyYAML's scanner is quadratic in the nesting of
        # flow collections ("[[[[..."), and its parser recurses once per level
        if self.flow_level >= MAX_DEPTH:
            raise ScannerError(
                None, None, f"collections nested more than {MAX_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def key_path(loc: Iterable[str | int]) -> str:
    """``("routes", 0, "upstream")`` → ``routes[0].upstream``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_data(text: str, file: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse ``text`` and substitute variables; raises :class:`ConfigError` with every problem."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        reason = f"not valid YAML: the character #x{e.character:04x} is not allowed"
        raise ConfigError([ConfigProblem(file, f"line {line}, column {column}", reason)]) from None
    except yaml.YAMLError as e:
        raise ConfigError([_yaml_problem(e, file)]) from None
    except RecursionError:  # PyYAML parses nested collections recursively
        reason = f"not valid YAML: collections nested too deeply (at most {MAX_DEPTH} levels)"
        raise ConfigError([ConfigProblem(file, "", reason)]) from None
    if data is None:
        # an empty file is far more often a file caught mid-write (truncated, not yet written)
        # or a mistake than a wish to run with nothing: saying `{}` is the way to mean it
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    "",
                    "the file is empty (nothing but blanks or comments); write `{}` to run on "
                    "the defaults with no upstreams",
                )
            ]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    "",
                    "the top level must be a mapping of sections (admin:, http:, upstreams:, ...), "
                    f"got {show(data)}",
                )
            ]
        )
    problems: list[ConfigProblem] = []
    try:
        data = _substitute(data, (), environ, file, problems, [0])
    except _TooLarge as e:
        raise ConfigError([ConfigProblem(file, key_path(e.loc), e.reason)]) from None
    if problems:
        raise ConfigError(problems)
    return data  # type: ignore[no-any-return]


def _yaml_problem(error: yaml.YAMLError, file: str) -> ConfigProblem:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    if "written twice" in problem:
        return ConfigProblem(file, where, problem)
    context = getattr(error, "context", None)
    if context:
        start = getattr(error, "context_mark", None)
        if start is not None and (mark is None or start.line != mark.line):
            context += f" that starts at line {start.line + 1}, column {start.column + 1}"
        problem += f" ({context})"
    return ConfigProblem(file, where, f"not valid YAML: {problem}")


def _substitute(
    value: Any,
    loc: tuple[str | int, ...],
    env: Mapping[str, str],
    file: str,
    problems: list[ConfigProblem],
    seen: list[int],
) -> Any:
    """``value`` with variables substituted, as new containers; ``seen[0]`` counts the values
    walked, aliases counted each time they are used (that is what the walk costs)."""
    seen[0] += 1
    if seen[0] > MAX_VALUES:
        raise _TooLarge(loc, f"more than {MAX_VALUES} values once aliases are expanded")
    if isinstance(value, str):
        return _expand(value, loc, env, file, problems) if "${" in value else value
    if isinstance(value, dict | list) and len(loc) >= MAX_DEPTH:
        raise _TooLarge(
            loc, f"nested more than {MAX_DEPTH} levels deep (an alias used inside itself?)"
        )
    if isinstance(value, dict):
        # keys are never substituted; scalar keys become strings (``200:`` means "200")
        return {
            _key(k): _substitute(v, (*loc, _key(k)), env, file, problems, seen)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, (*loc, i), env, file, problems, seen) for i, v in enumerate(value)]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    return key


def _expand(
    text: str,
    loc: tuple[str | int, ...],
    env: Mapping[str, str],
    file: str,
    problems: list[ConfigProblem],
) -> str:
    def replace(m: re.Match[str]) -> str:
        whole, name, default = m.group(0), m.group(1), m.group(2)
        if whole == "$${":
            return "${"
        if name is None:
            problems.append(
                ConfigProblem(
                    file,
                    key_path(loc),
                    "a ${ without a variable: write ${NAME}, ${NAME:-default}, "
                    "or $${ for a literal ${",
                )
            )
            return whole
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is None:
            problems.append(
                ConfigProblem(
                    file,
                    key_path(loc),
                    f"the environment variable {name} is not set "
                    f"(write ${{{name}:-default}} to give a default)",
                )
            )
        return ""

    return _REFERENCE.sub(replace, text)
