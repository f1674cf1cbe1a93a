"""The document is parsed once and measured; each limit refuses with its code and status."""

from __future__ import annotations

import pytest
from sidecar_graphql.answers import Refusal
from sidecar_graphql.config import Limits
from sidecar_graphql.document import analyze


def refusal(query: str, name: str | None = None, **limits: int) -> Refusal:
    with pytest.raises(Refusal) as caught:
        analyze(query, name, Limits(**limits))
    return caught.value


def test_an_operation_is_named_typed_and_measured_through_fragments() -> None:
    """Name, type, depth, aliases and root fields count what fragments bring in."""
    op = analyze(
        "query Q { a: x { b { c } } ...F } fragment F on Query { y: z { w } v }", None, Limits()
    )
    assert (op.name, op.kind, op.depth, op.aliases, op.root_fields) == ("Q", "query", 3, 2, 3)


def test_the_operation_named_by_operation_name_is_the_one_measured() -> None:
    """With several operations, operationName picks the one whose figures count."""
    doc = "query A { a } mutation B { b { c { d } } }"
    op = analyze(doc, "B", Limits())
    assert (op.name, op.kind, op.depth) == ("B", "mutation", 3)
    assert refusal(doc).code == "OPERATION_RESOLUTION_FAILURE"
    assert refusal(doc, "C").code == "OPERATION_RESOLUTION_FAILURE"


def test_depth_over_the_limit_is_refused_with_400() -> None:
    """A document nested past max_depth is refused before anything is sent."""
    r = refusal("{ a { b { c { d } } } }", max_depth=3)
    assert (r.status, r.code) == (400, "DEPTH_LIMIT_EXCEEDED")
    assert analyze("{ a { b { c } } }", None, Limits(max_depth=3)).depth == 3


def test_depth_counts_through_fragment_spreads() -> None:
    """A fragment cannot hide depth: its fields count where it is spread."""
    doc = "{ a { ...F } } fragment F on T { b { c { d } } }"
    assert refusal(doc, max_depth=3).code == "DEPTH_LIMIT_EXCEEDED"


def test_cyclic_fragments_do_not_loop() -> None:
    """Fragments spreading each other end the walk (the server refuses them anyway)."""
    op = analyze("{ ...A } fragment A on Q { a ...B } fragment B on Q { b ...A }", None, Limits())
    assert op.root_fields == 2


def test_aliases_over_the_limit_are_refused() -> None:
    """Aliases (a classic batching attack) are counted, fragments included where spread."""
    doc = "{ ...F ...F } fragment F on Q { a1: x a2: x }"
    assert refusal(doc, max_aliases=3).code == "TOO_MANY_ALIASES"
    assert analyze(doc, None, Limits(max_aliases=4)).aliases == 4


def test_root_fields_over_the_limit_are_refused() -> None:
    """Each root field is a resolver call on the server: their number is bounded."""
    r = refusal("{ a b c ... on Q { d } }", max_root_fields=3)
    assert (r.status, r.code) == (400, "TOO_MANY_ROOT_FIELDS")


def test_tokens_over_the_limit_stop_the_parser() -> None:
    """graphql-core stops parsing at max_tokens: a huge document costs no more than that."""
    r = refusal("{ " + "a " * 200 + "}", max_tokens=100, max_root_fields=1000)
    assert (r.status, r.code) == (400, "TOO_MANY_TOKENS")


def test_a_document_over_its_size_is_413() -> None:
    """The document's bytes are checked before it is parsed."""
    r = refusal("{ a }" + " " * 100, max_document_bytes=64)
    assert (r.status, r.code) == (413, "DOCUMENT_TOO_LARGE")


def test_a_syntax_error_is_graphql_parse_failed() -> None:
    """A document that does not parse is the app's mistake: 400 with the parser's message."""
    r = refusal("{ a ")
    assert (r.status, r.code) == (400, "GRAPHQL_PARSE_FAILED")
    assert "Syntax Error" in r.message


def test_a_nesting_past_the_parser_is_refused_not_crashed() -> None:
    """A document nested deeper than Python's recursion is a 400, never a 500."""
    r = refusal(
        "{" + "a{" * 3000 + "b" + "}" * 3001, max_tokens=1_000_000, max_document_bytes=10**6
    )
    assert r.status == 400
