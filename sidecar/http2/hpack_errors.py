"""The errors of HPACK decoding, kept out of the compiled modules so callers may subclass or
catch them freely.

:class:`HPACKError` means the header block is malformed: the connection answers with a
COMPRESSION_ERROR (RFC 9113 4.3), since the two dynamic tables can no longer agree.
:class:`OversizedHeaderListError` means the block decoded past the size we allow; the decoder
read the whole block all the same (keeping none of the headers past the limit), so its table
still matches the peer's: the one stream may be refused and the connection go on.
"""

from __future__ import annotations

__all__ = ["HPACKError", "OversizedHeaderListError"]


class HPACKError(Exception):
    """A malformed HPACK header block (the connection answers COMPRESSION_ERROR)."""


class OversizedHeaderListError(HPACKError):
    """The decoded header list passed ``max_header_list_size``: ``size`` is its whole size
    (RFC 9113 6.5.2: names, values and 32 octets each), ``headers`` those decoded before it
    passed the limit (the pseudo-headers come first)."""

    def __init__(
        self, message: str, size: int = 0, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message)
        self.size = size
        self.headers: list[tuple[bytes, bytes]] = headers if headers is not None else []
