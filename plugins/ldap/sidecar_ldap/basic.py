"""Reading HTTP Basic credentials (RFC 7617) from a caller's ``Authorization`` header.

Strict on purpose: the scheme is ``Basic`` (any case), the token is standard base64 with its
padding, the decoded text is UTF-8 and holds a ``:``. A user name must be non-empty, no longer
than the configured bound and free of control characters (NUL included); a password must be
non-empty, because a simple bind with a DN and an **empty password is an unauthenticated bind**
that LDAP servers answer with success (RFC 4513 §5.1.2), the classic way past LDAP logins.

Every refusal is a :class:`NoCredentials` whose message never repeats what the caller sent.

Not here: what the directory says (:mod:`.directory`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

#: the longest ``Authorization`` value read (a longer one is refused unread)
MAX_HEADER = 4096


class NoCredentials(Exception):
    """The call carries no usable Basic credentials (the reason, never the value)."""


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A user name and password, as the caller sent them; ``repr`` never shows the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def parse_basic(header: str | None, max_username: int) -> Credentials:
    """The credentials of ``header`` (an ``Authorization`` value) or :class:`NoCredentials`."""
    if header is None:
        raise NoCredentials("no Authorization header")
    if len(header) > MAX_HEADER:
        raise NoCredentials("Authorization header too long")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise NoCredentials("Authorization is not Basic")
    try:
        raw = base64.b64decode(token.strip(), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise NoCredentials("malformed Basic credentials") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise NoCredentials("malformed Basic credentials")
    if not username or len(username) > max_username or _has_control(username):
        raise NoCredentials("unusable user name")
    if not password:
        # an empty password would be an unauthenticated bind, which succeeds: never try it
        raise NoCredentials("empty password")
    if "\x00" in password or len(password) > MAX_HEADER:
        raise NoCredentials("unusable password")
    return Credentials(username, password)
