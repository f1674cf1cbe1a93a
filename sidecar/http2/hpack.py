"""HPACK (RFC 7541): header blocks decoded into and encoded from ``list[tuple[bytes, bytes]]``.

What it is: the one place the rest of the sidecar imports HPACK from: :class:`Decoder`
(:mod:`hpack_decoder`) and :class:`Encoder` (:mod:`hpack_encoder`), one of each per connection,
names lowercase bytes and values bytes, written for mypyc; their errors
(:mod:`hpack_errors`). What it is not: HTTP/2 semantics (:mod:`header_rules`) nor framing.
"""

from __future__ import annotations

__all__ = ["SENSITIVE_NAMES", "Decoder", "Encoder", "HPACKError", "OversizedHeaderListError"]

from sidecar.http2.hpack_decoder import Decoder
from sidecar.http2.hpack_encoder import SENSITIVE_NAMES, Encoder
from sidecar.http2.hpack_errors import HPACKError, OversizedHeaderListError
