"""The errors of HPACK decoding, kept out of the compiled modules so callers may subclass or
catch them freely.

:class:`HPACKError` means the header block is malformed: the connection answers with a
COMPRESSION_ERROR (RFC 9113 4.3), since the two dynamic tables can no longer agree.
:class:`OversizedHeaderListError` means the block decoded past the size we allow; the decoder
stops there, so its table no longer matches the peer's either and the connection must end.
"""

from __future__ import annotations

__all__ = ["HPACKError", "OversizedHeaderListError"]


class HPACKError(Exception):
    """A malformed HPACK header block (the connection answers COMPRESSION_ERROR)."""


class OversizedHeaderListError(HPACKError):
    """The decoded header list passed ``max_header_list_size``."""
