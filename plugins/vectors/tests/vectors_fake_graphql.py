"""Just enough of a GraphQL parser for the test Weaviate: one query of nested fields with
arguments (objects, lists, strings, numbers, booleans, enums); commas are whitespace, as in
GraphQL. A syntax error raises :class:`GraphQLSyntaxError` with Weaviate-like wording."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(
    r"""\s*(?:
      (?P<punct>[{}()\[\]:])
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    )""",
    re.VERBOSE,
)


class GraphQLSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class EnumValue:
    name: str


@dataclass
class Field:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    fields: list[Field] = field(default_factory=list)


def tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.replace(",", " ")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if m is None:
            raise GraphQLSyntaxError(f"Syntax Error GraphQL request: Unexpected character at {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise GraphQLSyntaxError(
                f"Syntax Error GraphQL request: Expected {value or 'token'}, found {tok}"
            )
        self.i += 1
        return tok

    def selection(self) -> list[Field]:
        self.take("{")
        fields = []
        while (tok := self.peek()) is not None and tok[1] != "}":
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        kind, name = self.take()
        if kind != "name":
            raise GraphQLSyntaxError(f"Syntax Error GraphQL request: Expected Name, found {name}")
        f = Field(name)
        if (tok := self.peek()) is not None and tok[1] == "(":
            self.take("(")
            while (tok := self.peek()) is not None and tok[1] != ")":
                _, arg = self.take()
                self.take(":")
                f.args[arg] = self.value()
            self.take(")")
        if (tok := self.peek()) is not None and tok[1] == "{":
            f.fields = self.selection()
        return f

    def value(self) -> Any:
        kind, text = self.take()
        if text == "{":
            obj: dict[str, Any] = {}
            while (tok := self.peek()) is not None and tok[1] != "}":
                _, key = self.take()
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        if text == "[":
            items = []
            while (tok := self.peek()) is not None and tok[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, EnumValue(text))
        raise GraphQLSyntaxError(f"Syntax Error GraphQL request: Unexpected {text}")


def parse(text: str) -> list[Field]:
    """The top-level selection of a query document (``{ Get { ... } }``)."""
    p = _Parser(text)
    if (tok := p.peek()) is not None and tok == ("name", "query"):
        p.take()
    fields = p.selection()
    if p.peek() is not None:
        raise GraphQLSyntaxError("Syntax Error GraphQL request: Unexpected text after the query")
    return fields
