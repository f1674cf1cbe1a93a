"""The fenced code blocks of the project's Markdown docs, and what a shown output promises.

A walkthrough is a set of blocks a user copies in order. Each of its blocks carries an anchor,
an HTML comment on the line above the fence (blank lines between are allowed)::

    <!-- walkthrough: mtls-complete -->
    ```console
    $ sidecar certs init-ca --out pki/ca
    ```

so a test finds "the blocks of walkthrough ``mtls-complete`` in docs/mtls.md" whatever else
the page gains or loses. Console blocks split into :class:`ConsoleStep` (``$ command``, its
``\\``-continued lines, then the output shown); output lines that start with ``# `` are notes to
the reader ("the upstream receives: ..."), not output. A shown output matches the real one line
by line, where a line ``...`` stands for any number of lines; an HTTP response whose doc shows
no ``...`` matches when its status line, the headers the doc shows and its body do.

This module reads and compares; it runs nothing (``doc_session`` does) and is no Markdown parser
(only backtick fences, no nesting).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WILDCARD = "..."
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>```+)(?P<info>[^`\s]*)\s*$")
_ANCHOR = re.compile(r"^\s*<!--\s*walkthrough:\s*(?P<name>[\w.-]+)\s*-->\s*$")
_FILE_COMMENT = re.compile(r"^(?:#|//)\s*(?P<name>[\w./-]+\.(?:ya?ml|toml|py))\b")


@dataclass(frozen=True)
class CodeBlock:
    doc: str  # path relative to the repository, for messages
    line: int  # 1-based line of the opening fence
    lang: str
    text: str  # dedented to the fence's indent, ending with a newline
    anchor: str | None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file a block shows, from its first line (``# payments.yaml``), if it names one."""
        first = self.text.splitlines()[0] if self.text else ""
        found = _FILE_COMMENT.match(first)
        return found["name"] if found else None


def code_blocks(doc: str) -> list[CodeBlock]:
    """Every fenced block of ``doc`` (a path relative to the repository), in page order."""
    lines = (REPO / doc).read_text().splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
        ]
        blocks.append(
            CodeBlock(doc, i + 1, opening["info"], "\n".join(body) + "\n", _anchor(lines, i))
        )
        i = end + 1
    return blocks


def _anchor(lines: list[str], fence: int) -> str | None:
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    found = _ANCHOR.match(lines[j]) if j >= 0 else None
    return found["name"] if found else None


def walkthrough(doc: str, name: str) -> list[CodeBlock]:
    """The blocks anchored ``walkthrough: name`` in ``doc``, in page order (at least one)."""
    found = [b for b in code_blocks(doc) if b.anchor == name]
    assert found, f"{doc} has no block anchored <!-- walkthrough: {name} -->"
    return found


def section(doc: str, heading: str) -> str:
    """The text under the ``## heading`` of ``doc``, up to the next heading of that level."""
    text = (REPO / doc).read_text()
    found = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert found, f"{doc} has no heading {heading!r}"
    level = found[1]
    rest = text[found.end() :]
    end = re.search(rf"^{level} ", rest, re.M)
    return rest[: end.start()] if end else rest


@dataclass(frozen=True)
class ConsoleStep:
    command: str  # as typed, continuation lines included
    output: str  # the output shown, notes removed
    notes: list[str] = field(default_factory=list)  # the "# ..." lines under it, without "# "

    @property
    def background(self) -> bool:
        return self.command.rstrip().endswith("&") and not self.command.rstrip().endswith("&&")

    @property
    def comment(self) -> str | None:
        """A trailing ``# comment`` on the command's last line."""
        found = re.search(r"\s#\s+(.*)$", self.command.rstrip().splitlines()[-1])
        return found[1] if found else None


def console_steps(block: CodeBlock) -> list[ConsoleStep]:
    """The ``$ command`` / output pairs of a console block."""
    steps: list[ConsoleStep] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"{block.where}: output before any command: {lines[i]!r}"
        command = [lines[i][2:]]
        while not _complete("\n".join(command)) and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        output: list[str] = []
        notes: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            (notes.append(lines[i][2:]) if lines[i].startswith("# ") else output.append(lines[i]))
            i += 1
        text = "\n".join(output) + "\n" if output else ""
        steps.append(ConsoleStep("\n".join(command), text, notes))
    return steps


def _complete(command: str) -> bool:
    """Whether a shell command is whole: no trailing ``\\``, no quote left open."""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation": a quoted argument goes on on the next line
        return False
    return True


def shell_commands(block: CodeBlock) -> list[str]:
    """The commands of an ``sh`` block: continuation lines and here-documents kept whole."""
    commands: list[str] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        command = [lines[i]]
        heredoc = re.search(r"<<'?(\w+)'?", lines[i])
        while heredoc and i + 1 < len(lines) and command[-1] != heredoc[1]:
            i += 1
            command.append(lines[i])
        while command[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        commands.append("\n".join(command))
        i += 1
    return commands


Normaliser = Callable[[str], str]

#: what differs from run to run, or machine to machine, in the outputs the docs show
VARYING = [
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", "<time>"),
    (r"\b[0-9a-f]{64}\b", "<sha256>"),
    # ls -l: the mode and the name; not the links, owner, size or date
    (r"^([-dlrwx]{10})\s+\d+\s+\S+\s+\S+\s+\d+\s+\w{3}\s+\d+\s+[\d:]+\s+(.*)$", r"\1 \2"),
    (r"^total \d+$", "total <n>"),
    (r'"user-agent": "curl/[^"]*"', '"user-agent": "curl"'),
    (r"^(content-length:) \d+$", r"\1 <n>"),  # a rewritten port may change a body's length
    (r"^(sidecar_certificate_expiry_seconds\{.*\}) \S+$", r"\1 <seconds>"),
    (r'"valid_for_s": [\d.]+', '"valid_for_s": 0'),
]


def normalised(text: str, rules: Iterable[tuple[str, str]]) -> str:
    """``text`` with each ``(regex, replacement)`` applied (multiline regexes)."""
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text, flags=re.M)
    return text


def vary(text: str) -> str:
    """``text`` with what :data:`VARYING` names replaced by placeholders."""
    return normalised(text, VARYING)


def lines_match(expected: str, actual: str) -> bool:
    """Line by line, where an expected line ``...`` (any indent) stands for any lines."""
    pattern = ""
    for line in expected.splitlines():
        pattern += r"(?:[^\n]*\n)*?" if line.strip() == WILDCARD else re.escape(line) + r"\n"
    # a terminal's trailing blank lines (print() of a text ending in a newline) show nothing
    text = actual.rstrip("\n") + "\n" if actual.strip() else ""
    return re.fullmatch(pattern, text) is not None


def http_match(expected: str, actual: str) -> bool:
    """A ``curl -i`` output: the same status line, the headers shown (names ignore case), and
    the same body (as JSON when it is JSON), whatever other headers the real answer has."""
    exp_head, _, exp_body = expected.replace("\r\n", "\n").partition("\n\n")
    act_head, _, act_body = actual.replace("\r\n", "\n").partition("\n\n")
    exp_status, *exp_headers = exp_head.splitlines()
    act_status, *act_headers = act_head.splitlines()
    have = {_header(h) for h in act_headers}
    if exp_status != act_status or not all(_header(h) in have for h in exp_headers):
        return False
    if not exp_body.strip():
        return True
    try:
        return bool(json.loads(exp_body) == json.loads(act_body))
    except ValueError:
        return lines_match(exp_body, act_body)


def _json(text: str) -> object:
    try:
        return json.loads(text) if text.lstrip()[:1] in ("{", "[") else None
    except ValueError:
        return None


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def assert_output(expected: str, actual: str, *, what: str) -> None:
    """``actual`` is what the doc shows for ``what`` (the two are printed when it is not)."""
    actual = actual.replace("\r\n", "\n")
    wildcards = any(line.strip() == WILDCARD for line in expected.splitlines())
    if expected.startswith("HTTP/") and not wildcards:
        ok = http_match(expected, actual)
    elif _json(expected) is not None:  # jq or an API: the same document, however laid out
        ok = _json(expected) == _json(actual)
    else:
        ok = lines_match(expected, actual)
    assert ok, f"{what}: the doc shows\n{expected}\n--- but the command printed\n{actual}"
