"""A check at route composition: an ``aws_sigv4`` upstream's ``request_headers`` must not set
a header the signature covers.

``request_headers`` are applied after the ``auth`` filter (so an operator can override a
credential on purpose); a signed header set there would be sent with a value the signature
does not cover, and every call would be refused by AWS. This refuses such a config at start-up
or reload, at the header's key path. It adds nothing to any chain (the factory returns
``None``), so it costs no call anything.
"""

from __future__ import annotations

__all__ = ["GUARD", "guard_factory", "signed_by_provider"]

from sidecar import AuthConfigProblem, Filter, RouteContext

#: the filter name the check is registered under.
GUARD = "aws_sigv4_request_headers"


def signed_by_provider(name: str, sign_headers: list[str]) -> bool:
    """Whether the provider signs or sets header ``name`` (lower-case)."""
    return (
        name in ("host", "authorization", "content-type", "content-md5")
        or name.startswith("x-amz-")
        or name in sign_headers
    )


def guard_factory(ctx: RouteContext) -> Filter | None:
    auth = ctx.upstream.auth
    if auth is None or auth.type != "aws_sigv4":
        return None
    extra = auth.options().get("sign_headers") or []
    extra = [str(h) for h in extra] if isinstance(extra, list) else []
    for name in ctx.upstream.request_headers:
        lower = name.lower()
        if signed_by_provider(lower, extra):
            raise AuthConfigProblem(
                f"request_headers.{name}",
                f"{lower} is signed by aws_sigv4 and request_headers are set after signing: "
                "the upstream would refuse every call (set it in the app, or remove it)",
            )
    return None
