"""The ``saml`` filter: the browser's login flow on the protected front's routes.

Per call, in order: the ACS path (``POST``: a Response from the IdP) and the metadata path
(``GET``) are answered here and never reach the app; everywhere else the headers the plugin sets
are first removed from the call (the app never sees a browser's own ``x-saml-*``); a public
path passes; a call with a valid session cookie passes with the session's headers, the plugin's
cookies removed from ``Cookie``; a ``GET``/``HEAD`` without one is redirected to the IdP, any
other method is refused with 401 (a redirect would lose its body).

The login binds the IdP's answer to the browser that asked: the AuthnRequest IDs it started are
kept in a sealed ``<cookie>_req`` cookie (``SameSite=None``, as the IdP's POST is cross-site,
and ``Path`` = the ACS path) as well as in the bounded pending store; the Response's
InResponseTo must be one of them, and is taken once. Not here: the SAML checks
(:mod:`.provider`), the cookie's crypto (:mod:`.seal`).
"""

from __future__ import annotations

__all__ = ["SamlState", "build_filter"]

import asyncio
import base64
import binascii
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sidecar import (
    Exchange,
    Filter,
    Handler,
    Headers,
    Response,
    SidecarError,
    log_field,
    read_body,
)

from .config import SamlConfig
from .provider import Login, Refused, ServiceProvider
from .seal import MAX_COOKIE_CHARS, Sealer
from .stores import OneUse

log = logging.getLogger("sidecar.saml")
#: the longest original URL kept as RelayState; a longer one returns to ``/``
MAX_RELAY_STATE = 1024
#: AuthnRequests one browser may have open at once (tabs); older ones are dropped
MAX_REQUESTS_PER_BROWSER = 4


class LoginRequired(SidecarError):
    """A call without a valid session that cannot be redirected (not GET/HEAD)."""

    status, grpc_code, code = 401, 16, "saml_login_required"


class ResponseRefused(SidecarError):
    """A Response posted to the ACS that does not prove a login."""

    status, grpc_code, code = 403, 7, "saml_response_refused"


@dataclass
class SamlState:
    """What the routes of one front share, kept across reloads while the section is equal."""

    provider: ServiceProvider
    pending: OneUse
    seen: OneUse
    checks: asyncio.Semaphore


def new_state(cfg: SamlConfig) -> SamlState:
    """The provider and the bounded stores of one validated section."""
    return SamlState(
        ServiceProvider(cfg),
        OneUse(cfg.max_pending_requests),
        OneUse(cfg.max_seen_assertions),
        asyncio.Semaphore(cfg.max_concurrent_checks),
    )


def safe_return_path(relay_state: str) -> str:
    """``relay_state`` if it is a path on this origin, else ``/`` (no open redirect)."""
    rs = relay_state
    if not rs or len(rs) > MAX_RELAY_STATE or not rs.startswith("/") or rs.startswith("//"):
        return "/"
    if any(c in rs for c in "\\\r\n\t") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in rs):
        return "/"
    parts = urlsplit(rs)
    if parts.scheme or parts.netloc:
        return "/"
    return rs


def header_value(values: list[str]) -> str | None:
    """The header value of an attribute's values: joined by ``", "``, sent as UTF-8 bytes;
    ``None`` when any value holds a control character (it could split the header)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for v in values for c in v):
        return None
    return ", ".join(values).encode().decode("latin-1")


def cookie_values(headers: Headers, name: str) -> list[str]:
    """The values of cookie ``name`` in the call's ``Cookie`` headers."""
    out = []
    for line in headers.get_all("cookie"):
        for part in line.split(";"):
            key, eq, value = part.strip().partition("=")
            if eq and key == name:
                out.append(value)
    return out


def without_cookies(headers: Headers, names: frozenset[str]) -> None:
    """Remove the plugin's cookies from ``Cookie``: the app never sees the session."""
    lines = headers.get_all("cookie")
    if not lines:
        return
    kept = [
        p.strip()
        for line in lines
        for p in line.split(";")
        if p.strip() and p.strip().partition("=")[0] not in names
    ]
    headers.remove("cookie")
    if kept:
        headers.set("cookie", "; ".join(kept))


def build_filter(
    cfg: SamlConfig, state: SamlState, sealer: Sealer, clock: Callable[[], float] = time.time
) -> Filter:
    """The filter of one route of the protected front."""
    assert cfg.session is not None
    session_cookie = cfg.session.cookie
    binding_cookie = f"{session_cookie}_req"
    ours = frozenset({session_cookie, binding_cookie})
    lifetime = cfg.session.lifetime
    strip = tuple(cfg.attributes.values()) + (
        (cfg.name_id_header.lower(),) if cfg.name_id_header else ()
    )
    strip_set = frozenset(strip)
    public = tuple(cfg.public_paths)
    acs_path, metadata_path = cfg.acs_path, cfg.metadata_path
    metadata = state.provider.metadata.encode()
    secure = "; Secure; HttpOnly"

    def open_session(exchange: Exchange) -> dict[str, str] | None:
        for value in cookie_values(exchange.headers, session_cookie):
            body = sealer.open(session_cookie, value)
            if body is not None and isinstance(body.get("h"), dict):
                return {str(k): str(v) for k, v in body["h"].items()}
        return None

    def redirect(exchange: Exchange) -> Response:
        target = exchange.target
        relay = target if len(target) <= MAX_RELAY_STATE else "/"
        request_id, location = state.provider.login_redirect(relay)
        state.pending.add(request_id, cfg.request_lifetime)
        ids = [request_id]
        for value in cookie_values(exchange.headers, binding_cookie):
            body = sealer.open(binding_cookie, value)
            if body is not None and isinstance(body.get("ids"), list):
                ids += [str(i) for i in body["ids"]][: MAX_REQUESTS_PER_BROWSER - 1]
                break
        headers = Headers(
            [("location", location), ("cache-control", "no-store"), ("set-cookie", rebind(ids))]
        )
        return Response(302, headers, b"")

    def rebind(ids: list[str]) -> str:
        """The ``Set-Cookie`` keeping the logins this browser has open (none: deleted)."""
        if not ids:
            return f"{binding_cookie}=; Path={acs_path}; Max-Age=0{secure}; SameSite=None"
        bound = sealer.seal(binding_cookie, {"ids": ids}, cfg.request_lifetime)
        return (
            f"{binding_cookie}={bound}; Path={acs_path}; "
            f"Max-Age={int(cfg.request_lifetime)}{secure}; SameSite=None"
        )

    async def acs(exchange: Exchange) -> Response:
        if exchange.method != "POST":
            return Response(405, Headers([("allow", "POST")]), b"")
        body = await read_body(exchange, cfg.max_response_bytes)
        try:
            form = parse_qs(body.decode("latin-1"), max_num_fields=8)
        except ValueError:
            raise ResponseRefused("the ACS form is malformed") from None
        saml_response = (form.get("SAMLResponse") or [""])[0]
        relay_state = (form.get("RelayState") or ["/"])[0]
        bound: list[str] = []
        for value in cookie_values(exchange.headers, binding_cookie):
            opened = sealer.open(binding_cookie, value)
            if opened is not None and isinstance(opened.get("ids"), list):
                bound = [str(i) for i in opened["ids"]]
                break
        if not saml_response:
            raise ResponseRefused("no SAMLResponse in the form")
        request_id = _in_response_to(saml_response)
        if request_id is None or request_id not in bound:
            raise ResponseRefused("the response answers no login this browser started")
        if not state.pending.take(request_id):
            raise ResponseRefused("the response answers no pending login (used or expired)")
        async with state.checks:
            try:
                login = await asyncio.to_thread(state.provider.check, saml_response, request_id)
            except Refused as e:
                log.info("saml response refused: %s", e.reason)
                log_field(exchange, "saml", e.reason)
                raise ResponseRefused(f"the SAML response was refused: {e.reason}") from None
        now = clock()
        ttl = max(1.0, min(login.not_on_or_after - now + cfg.max_skew, 86400.0))
        if not state.seen.first_use(login.assertion_id, ttl):
            log_field(exchange, "saml", "replayed")
            raise ResponseRefused("the SAML response was refused: replayed")
        sealed = sealer.seal(session_cookie, {"h": _headers_of(cfg, login)}, lifetime)
        if len(sealed) + len(session_cookie) > MAX_COOKIE_CHARS:
            raise ResponseRefused("the SAML response was refused: too many attributes")
        headers = Headers(
            [
                ("location", safe_return_path(relay_state)),
                ("cache-control", "no-store"),
                (
                    "set-cookie",
                    f"{session_cookie}={sealed}; Path=/; Max-Age={int(lifetime)}"
                    f"{secure}; SameSite=Lax",
                ),
                ("set-cookie", rebind([i for i in bound if i != request_id])),
            ]
        )
        log_field(exchange, "saml", "login")
        return Response(303, headers, b"")

    async def saml(exchange: Exchange, call_next: Handler) -> Response:
        path = exchange.path
        if path == acs_path:
            return await acs(exchange)
        if path == metadata_path and exchange.method in ("GET", "HEAD"):
            headers = Headers([("content-type", "application/samlmetadata+xml")])
            body = metadata if exchange.method == "GET" else b""
            return Response(200, headers, body, length=len(metadata))
        for name in strip:
            exchange.headers.remove(name)  # the browser's own copies never reach the app
        is_public = bool(public) and path.startswith(public)
        values = None if is_public else open_session(exchange)
        if values is None and not is_public:
            if exchange.method in ("GET", "HEAD"):
                return redirect(exchange)
            raise LoginRequired("no valid SAML session: log in with a browser GET first")
        without_cookies(exchange.headers, ours)  # the app never sees the session
        for name, value in (values or {}).items():
            # only the headers configured now: a session sealed under an older mapping
            # cannot set a header the app no longer expects from the sidecar
            if name in strip_set:
                exchange.headers.set(name, value)
        return await call_next(exchange)

    return saml


def _headers_of(cfg: SamlConfig, login: Login) -> dict[str, str]:
    """The headers a login gives the app: the NameID's and each configured attribute's."""
    out: dict[str, str] = {}
    if cfg.name_id_header:
        value = header_value([login.name_id])
        if value is not None:
            out[cfg.name_id_header.lower()] = value
    for attribute, header in cfg.attributes.items():
        values = login.attributes.get(attribute)
        if values:
            value = header_value(values)
            if value is not None:
                out[header] = value
    return out


def _in_response_to(saml_response: str) -> str | None:
    """The Response's ``InResponseTo``, read without trusting anything else in it (the
    document is checked whole by pysaml2 afterwards)."""
    try:
        xml = base64.b64decode(saml_response, validate=True)[:65536]
    except (binascii.Error, ValueError):
        return None
    m = re.search(
        rb'<(?:[A-Za-z0-9_]+:)?Response\b[^>]*?\sInResponseTo="([A-Za-z0-9_.-]{1,128})"', xml
    )
    return m.group(1).decode() if m else None
