"""The keys of ``upstreams.<u>.auth`` with ``type: aws_sigv4``, validated where the sidecar
validates the config, so ``sidecar check`` names a wrong one at its key path.

Not here: reading the keys (:mod:`.sources`) or signing (:mod:`.signing`).
"""

from __future__ import annotations

__all__ = ["S3_SERVICES", "Sigv4Settings"]

import re
from typing import Literal

from pydantic import Field, model_validator
from sidecar import Model, SecretRef, Size

#: services signed the S3 way: the path is not encoded twice, ``x-amz-content-sha256`` is sent.
S3_SERVICES = frozenset({"s3", "s3-object-lambda", "s3-outposts"})
#: a header name as HTTP allows it, lower-case (the ones signed beyond the defaults)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]{1,128}")
#: headers the sidecar or the adapter set after signing, or that change per hop
_NEVER_SIGNED = frozenset(
    {"authorization", "connection", "content-length", "expect", "keep-alive", "te",
     "trailer", "transfer-encoding", "upgrade", "user-agent", "x-forwarded-for", "traceparent",
     "tracestate", "x-amzn-trace-id", "proxy-authorization"}
)  # fmt: skip


class Sigv4Settings(Model):
    """``auth: {type: aws_sigv4, region, service, ...}``."""

    #: the region signed for (``us-east-1``).
    region: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    #: the service's signing name (``s3``, ``execute-api``, ``es``, ``sqs``...).
    service: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    #: where the keys come from: ``keys`` (the three references below), ``env`` (the standard
    #: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``), ``container``
    #: (the ECS/EKS container credentials endpoint). Unset: ``keys`` when they are given, else
    #: ``env``.
    source: Literal["keys", "env", "container"] | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None
    #: ``signed``: the body's SHA-256 is signed (bodies are buffered, up to ``max_body``);
    #: ``unsigned``: ``UNSIGNED-PAYLOAD`` (bodies stream; S3 and a few services accept it).
    payload: Literal["signed", "unsigned"] = "signed"
    #: the largest body buffered to be hashed; a larger one is refused (413).
    max_body: Size = Field(8 * 1024 * 1024, ge=0, le=64 * 1024 * 1024)
    #: headers signed when present, beyond ``host``, ``content-type``, ``content-md5`` and
    #: every ``x-amz-*``.
    sign_headers: list[str] = Field(default=[], max_length=32)

    @model_validator(mode="after")
    def _consistent(self) -> Sigv4Settings:
        keys = (self.access_key_id, self.secret_access_key)
        given = [k is not None for k in keys]
        if any(given) and not all(given):
            raise ValueError("access_key_id and secret_access_key are given together")
        if self.session_token is not None and not all(given):
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.source in ("env", "container") and any(given):
            raise ValueError(f"source {self.source} reads its own keys: remove access_key_id...")
        if self.source == "keys" and not all(given):
            raise ValueError("source keys needs access_key_id and secret_access_key")
        for name in self.sign_headers:
            if _HEADER_NAME.fullmatch(name) is None:
                raise ValueError("sign_headers: each is a lower-case header name")
            if name in _NEVER_SIGNED:
                raise ValueError(
                    f"sign_headers: {name} is set or changed after signing, it cannot be signed"
                )
        return self

    @property
    def resolved_source(self) -> str:
        if self.source is not None:
            return self.source
        return "keys" if self.access_key_id is not None else "env"

    @property
    def s3(self) -> bool:
        return self.service in S3_SERVICES
