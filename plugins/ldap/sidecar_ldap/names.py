"""A group's name from its DN: the value of the DN's first RDN (RFC 4514), unescaped.

``cn=ops\\, night,ou=groups,dc=example,dc=org`` is the group ``ops, night`` when the name
attribute is ``cn``; a DN whose first RDN is of another attribute, multi-valued (``+``) or
malformed has no name here (its DN still counts in allow rules).
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")


def first_rdn_value(dn: str, attribute: str) -> str:
    """The unescaped value of ``dn``'s first RDN when its type is ``attribute``, else ``""``."""
    kind, eq, rest = dn.partition("=")
    if not eq or kind.strip().lower() != attribute.lower():
        return ""
    out: list[str] = []
    raw: list[int] = []  # hex-escaped bytes, decoded together (UTF-8 may span several)
    i = 0
    while i < len(rest):
        c = rest[i]
        if c == "\\":
            pair = rest[i + 1 : i + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                raw.append(int(pair, 16))
                i += 3
                continue
            if i + 1 >= len(rest):
                return ""
            c = rest[i + 1]
            i += 1
        elif c in ",;":
            break
        elif c == "+":
            return ""  # a multi-valued RDN names no single group
        if raw:
            out.append(bytes(raw).decode("utf-8", "replace"))
            raw = []
        out.append(c)
        i += 1
    if raw:
        out.append(bytes(raw).decode("utf-8", "replace"))
    return "".join(out).strip()
