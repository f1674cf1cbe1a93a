"""A multi-document YAML stream cut into its documents, each kept with its exact source text.

``sidecar inject`` writes a document it did not change as the very text it read (comments, key
order, quoting, everything), and re-serialises only the documents it changed. That is why the
stream is cut as text, at its ``---`` lines (the YAML spec forbids a ``---`` or ``...`` at the
start of a line inside a document, even in a block scalar), and each piece parsed on its own.
A changed document keeps its leading lines (``---``, comments such as Helm's ``# Source:``,
blank lines); the comments inside it are lost, since PyYAML does not keep them. A round-trip
library (ruamel.yaml) would keep those too, at the cost of a runtime dependency for one
subcommand; the untouched documents, which are most of a rendered chart, lose nothing as it is.

Parsing is YAML 1.1 as kubectl's own YAML library reads it (``yes``/``on`` are booleans), except
that a key written twice in one mapping is an error, as ``kubectl apply`` makes it.
What this module does not do: decide what to change (:mod:`.inject`).
"""

from __future__ import annotations

__all__ = ["Document", "StreamError", "dump_document", "split_documents"]

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

_MARKER = re.compile(r"^---(?:[ \t]|$)")
_DIRECTIVE = re.compile(r"^%")
_HEAD_LINE = re.compile(r"^(?:---[ \t]*(?:#.*)?|[ \t]*(?:#.*)?|%.*)$")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_END = re.compile(r"^\.\.\.(?:[ \t]|$)")


class StreamError(ValueError):
    """The stream is not YAML; the message names the document and the line."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping."""

    #: lines of the stream before this document's text, so messages give the stream's line
    line_offset = 0

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:  # "<<": merged, not a key of its own
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                    seen.setdefault(key, key_node.start_mark.line + 1 + self.line_offset)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise ConstructorError(
                        None,
                        None,
                        f"key {key!r} is written twice (first on line {first})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """kubectl's layout: block style, keys in their order, multi-line strings as ``|`` blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # never &anchors: Kubernetes tooling does not expect them


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


@dataclass
class Document:
    """One document of the stream: its text, where it starts, and its data (None if empty)."""

    text: str
    line: int  # 1-based line of the document's first line in the stream
    data: Any

    @property
    def head(self) -> str:
        """The leading ``---``, comment, directive and blank lines, kept when it is rewritten."""
        kept: list[str] = []
        for line in self.text.splitlines(keepends=True):
            if not _HEAD_LINE.match(line.rstrip("\r\n")):
                if (
                    _MARKER.match(line.rstrip("\r\n")) and not kept
                ):  # "--- {...}": keep the marker alone
                    kept.append("---\n")
                break
            kept.append(line)
        head = "".join(kept)
        return head if not head or head.endswith("\n") else head + "\n"


def split_documents(text: str, source: str) -> list[Document]:
    """The documents of ``text`` in order, each parsed; StreamError names a bad one."""
    pieces: list[tuple[int, list[str]]] = [(1, [])]
    only_directives = False  # the current piece so far holds only %directives (and comments)
    for number, text_line in enumerate(text.splitlines(keepends=True), start=1):
        bare = text_line.rstrip("\r\n")  # CRLF files too
        if _DIRECTIVE.match(bare):
            if not only_directives:
                pieces.append((number, []))
                only_directives = True
        elif _MARKER.match(bare):
            if not only_directives:
                pieces.append((number, []))
            only_directives = False
        elif only_directives and text_line.strip() and not text_line.lstrip().startswith("#"):
            only_directives = False
        pieces[-1][1].append(text_line)
    documents: list[Document] = []
    for line, lines in pieces:
        chunk = "".join(lines)
        if not chunk:
            continue
        loader = _UniqueKeyLoader(chunk)
        loader.line_offset = line - 1
        try:
            data = loader.get_single_data()
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {line + mark.line}" if mark is not None else f"line {line}"
            problem = getattr(e, "problem", None) or str(e)
            raise StreamError(f"{source}: {where}: not YAML: {problem}") from None
        finally:
            loader.dispose()
        documents.append(Document(text=chunk, line=line, data=data))
    return documents


def dump_document(document: Document, data: Any) -> str:
    """``data`` written in place of ``document``: its head lines, then the new YAML."""
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 16,  # never fold long strings across lines
    )
    # an explicit end ("..."), needed before a following %directive, is kept too
    ended = any(_END.match(line.rstrip("\r\n")) for line in document.text.splitlines())
    return document.head + body + ("...\n" if ended else "")
