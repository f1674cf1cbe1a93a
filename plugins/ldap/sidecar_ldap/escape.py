"""Putting a caller's text into LDAP filters and DNs so that it stays a value.

A user name typed by a caller goes into a search filter (``(uid={username})``) and, with
``user.dn``, into a DN. Unescaped, ``*)(uid=*))(|(uid=*`` would turn the filter into one that
matches every user, and ``admin,ou=x`` would name another entry. So:

- :func:`filter_value` escapes per RFC 4515 §3: ``*``, ``(``, ``)``, ``\\`` and NUL become
  ``\\2a``, ``\\28``, ``\\29``, ``\\5c``, ``\\00``;
- :func:`dn_value` escapes an attribute value per RFC 4514 §2.4: ``"`` ``+`` ``,`` ``;`` ``<``
  ``>`` ``\\`` and ``=`` get a backslash, a leading ``#`` or space and a trailing space too, NUL
  becomes ``\\00``;
- :func:`fill` replaces ``{name}`` placeholders by escaped values (never ``str.format``: a
  filter may hold braces of its own).

Not here: refusing a user name outright (control characters: :mod:`.basic`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_FILTER = {"\\": "\\5c", "*": "\\2a", "(": "\\28", ")": "\\29", "\x00": "\\00"}
_DN_SPECIAL = frozenset('"+,;<>\\=')
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def filter_value(value: str) -> str:
    """``value`` as an assertion value of an RFC 4515 filter: matched literally."""
    return "".join(_FILTER.get(c, c) for c in value)


def dn_value(value: str) -> str:
    """``value`` as an attribute value of an RFC 4514 DN: one value, never another RDN."""
    out: list[str] = []
    last = len(value) - 1
    for i, c in enumerate(value):
        if c == "\x00":
            out.append("\\00")
        elif c in _DN_SPECIAL or (i == 0 and c in "# ") or (i == last and c == " "):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def fill(template: str, values: Mapping[str, str], escape: Callable[[str], str]) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced by ``escape(value)``, in one
    pass: a value holding ``{dn}`` is never filled in again."""

    def one(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return m.group(0) if value is None else escape(value)

    return _PLACEHOLDER.sub(one, template)
