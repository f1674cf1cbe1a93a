"""The answers of a refused call, as RFC 6750 says a bearer-token resource answers.

Each is a ``SidecarError``: the sidecar's ``rescue`` filter answers it with its status, an
``x-sidecar-error`` code and a one-line body. The ``WWW-Authenticate`` header carries the
RFC 6750 error. Descriptions are fixed strings chosen here: nothing a caller sent (the token,
its claims, its ``kid``) is ever repeated in an answer.
"""

from __future__ import annotations

__all__ = ["InsufficientScope", "InvalidRequest", "InvalidToken", "KeysUnavailable", "MissingToken"]

from sidecar import SidecarError


def _challenge(realm: str, *params: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    # realm and params come from the config or from this module: quoted-string safe
    parts = [f'realm="{realm}"'] + [f'{k}="{v}"' for k, v in params]
    return (("www-authenticate", "Bearer " + ", ".join(parts)),)


class MissingToken(SidecarError):
    """No token on the call: 401 with a bare challenge (RFC 6750 section 3.1: no error code)."""

    status, grpc_code, code = 401, 16, "jwt_missing"  # 16: UNAUTHENTICATED

    def __init__(self, realm: str) -> None:
        super().__init__("the call carries no token", headers=_challenge(realm))


class InvalidToken(SidecarError):
    """A token that does not verify, or is expired, malformed, for someone else..."""

    status, grpc_code, code = 401, 16, "jwt_invalid"

    def __init__(self, realm: str, description: str) -> None:
        super().__init__(
            f"invalid token: {description}",
            headers=_challenge(
                realm, ("error", "invalid_token"), ("error_description", description)
            ),
        )


class InvalidRequest(SidecarError):
    """A call carrying more than one token (RFC 6750: ``invalid_request``, 400)."""

    status, grpc_code, code = 400, 3, "jwt_invalid_request"  # 3: INVALID_ARGUMENT

    def __init__(self, realm: str, description: str) -> None:
        super().__init__(
            description,
            headers=_challenge(
                realm, ("error", "invalid_request"), ("error_description", description)
            ),
        )


class InsufficientScope(SidecarError):
    """A valid token lacking what the route requires: 403 ``insufficient_scope``."""

    status, grpc_code, code = 403, 7, "jwt_insufficient_scope"  # 7: PERMISSION_DENIED

    def __init__(self, realm: str, claim: str, scope: str | None) -> None:
        params = [("error", "insufficient_scope")]
        if scope:
            params.append(("scope", scope))
        super().__init__(
            f"the token's {claim} claim lacks what this route requires",
            headers=_challenge(realm, *params),
        )


class KeysUnavailable(SidecarError):
    """The issuer's keys could not be fetched and none recent enough are held: 503."""

    status, grpc_code, code = 503, 14, "jwt_keys_unavailable"  # 14: UNAVAILABLE

    def __init__(self) -> None:
        super().__init__("the token issuer's keys are unavailable")
