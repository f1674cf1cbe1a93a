"""A document parsed once with graphql-core, and what the limits and the telemetry read from it.

:func:`analyze` parses the document (stopping at ``max_tokens``), picks the operation the request
names, and measures it: depth (fragments followed), aliases and root fields (fragments counted
where they are spread). What is over a limit is refused (:class:`~.answers.Refusal`, 400; a
document over its size, 413) as soon as it is known. Fragment cycles, which a server would
reject, are cut here rather than followed, so no document can make the walk loop.

graphql-core is imported by this module only, and this module only when a ``graphql`` upstream
is built: a sidecar without one never loads it (about 0.1 s and 150 modules).
"""

from __future__ import annotations

__all__ = ["Operation", "analyze"]

from dataclasses import dataclass

from graphql import GraphQLError, parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from .answers import Refusal
from .config import Limits


@dataclass(frozen=True)
class Operation:
    """The operation a request runs: ``kind`` is ``query``, ``mutation`` or ``subscription``."""

    name: str | None
    kind: str
    depth: int
    aliases: int
    root_fields: int


class _Measure:
    """Walks one operation's selections; a fragment's figures are measured once."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], max_depth: int) -> None:
        self.fragments = fragments
        #: past this the depth is not walked further (it is refused anyway)
        self.cut = max_depth + 1
        self.depth_of: dict[str, int] = {}
        self.aliases_of: dict[str, int] = {}
        self.visiting: set[str] = set()

    def depth(self, selections: SelectionSetNode | None, at: int) -> int:
        """Deepest field level below ``selections`` (``at`` levels already above it)."""
        if selections is None or at >= self.cut:
            return 0
        deepest = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                d = 1 + self.depth(node.selection_set, at + 1)
            elif isinstance(node, InlineFragmentNode):
                d = self.depth(node.selection_set, at)
            elif isinstance(node, FragmentSpreadNode):
                d = self._fragment(node.name.value, at)
            else:
                d = 0
            deepest = max(deepest, d)
        return deepest

    def _fragment(self, name: str, at: int) -> int:
        have = self.depth_of.get(name)
        if have is not None:
            return have
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return 0  # unknown or cyclic: the server refuses it; nothing to follow here
        self.visiting.add(name)
        d = self.depth(fragment.selection_set, at)
        self.visiting.discard(name)
        if at + d < self.cut:  # a cut walk is not this fragment's true depth: not kept
            self.depth_of[name] = d
        return d

    def aliases(self, selections: SelectionSetNode | None) -> int:
        if selections is None:
            return 0
        n = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                n += (node.alias is not None) + self.aliases(node.selection_set)
            elif isinstance(node, InlineFragmentNode):
                n += self.aliases(node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                have = self.aliases_of.get(name)
                if have is None:
                    fragment = self.fragments.get(name)
                    if fragment is None or name in self.visiting:
                        continue
                    self.visiting.add(name)
                    have = self.aliases_of[name] = self.aliases(fragment.selection_set)
                    self.visiting.discard(name)
                n += have
        return n

    def fields(self, selections: SelectionSetNode, seen: frozenset[str] = frozenset()) -> int:
        """Fields at this level, through inline fragments and spreads."""
        n = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                n += 1
            elif isinstance(node, InlineFragmentNode):
                n += self.fields(node.selection_set, seen)
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments.get(node.name.value)
                if fragment is not None and node.name.value not in seen:
                    n += self.fields(fragment.selection_set, seen | {node.name.value})
        return n


def _parse(query: str, limits: Limits) -> DocumentNode:
    try:
        return parse(query, no_location=True, max_tokens=limits.max_tokens)
    except GraphQLError as e:
        if "tokens" in e.message and "Parsing aborted" in e.message:
            raise Refusal(
                400, "TOO_MANY_TOKENS", f"the document has more than {limits.max_tokens} tokens"
            ) from None
        raise Refusal(400, "GRAPHQL_PARSE_FAILED", e.message[:300]) from None
    except RecursionError:
        raise Refusal(400, "GRAPHQL_PARSE_FAILED", "the document is nested too deeply") from None


def analyze(query: str, operation_name: str | None, limits: Limits) -> Operation:
    """Parse ``query``, pick the operation named ``operation_name`` (or its only one), and
    measure it against ``limits``: a :class:`~.answers.Refusal` at the first one exceeded."""
    size = len(query.encode())
    if size > limits.max_document_bytes:
        raise Refusal(
            413,
            "DOCUMENT_TOO_LARGE",
            f"the document is {size} bytes, over the limit of {limits.max_document_bytes}",
        )
    document = _parse(query, limits)
    operations: list[OperationDefinitionNode] = []
    fragments: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
        elif isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
    chosen = _choose(operations, operation_name)
    measure = _Measure(fragments, limits.max_depth)
    # depth first: the other walks recurse as deep as the document, so only once it is known
    # to be within the limit
    depth = measure.depth(chosen.selection_set, 0)
    if depth > limits.max_depth:
        raise Refusal(
            400, "DEPTH_LIMIT_EXCEEDED", f"the operation is nested over {limits.max_depth} levels"
        )
    aliases = measure.aliases(chosen.selection_set)
    if aliases > limits.max_aliases:
        raise Refusal(
            400,
            "TOO_MANY_ALIASES",
            f"the operation has {aliases} aliases, over the limit of {limits.max_aliases}",
        )
    root_fields = measure.fields(chosen.selection_set)
    if root_fields > limits.max_root_fields:
        raise Refusal(
            400,
            "TOO_MANY_ROOT_FIELDS",
            f"the operation selects {root_fields} root fields, over the limit of "
            f"{limits.max_root_fields}",
        )
    name = chosen.name.value if chosen.name is not None else None
    return Operation(name, chosen.operation.value, depth, aliases, root_fields)


def _choose(operations: list[OperationDefinitionNode], name: str | None) -> OperationDefinitionNode:
    if name is not None:
        for op in operations:
            if op.name is not None and op.name.value == name:
                return op
        raise Refusal(400, "OPERATION_RESOLUTION_FAILURE", f"no operation named {name[:128]!r}")
    if len(operations) == 1:
        return operations[0]
    if not operations:
        raise Refusal(400, "OPERATION_RESOLUTION_FAILURE", "the document has no operation")
    raise Refusal(
        400,
        "OPERATION_RESOLUTION_FAILURE",
        "the document has several operations: operationName must name one",
    )
