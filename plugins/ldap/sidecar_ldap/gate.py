"""The ``ldap`` filter: Basic credentials checked against the directory, groups against rules.

On each route of the inbound listener, per call:

1. the identity headers (``headers.*``) are removed whatever the caller sent, so the app can
   trust them;
2. ``Authorization: Basic`` is read (:mod:`.basic`): missing, malformed or with an empty
   password → 401 ``ldap_unauthenticated`` with ``WWW-Authenticate: Basic realm="..."``;
3. the checker (:mod:`.checker`) gives the verdict: a wrong password → the same 401; no verdict
   (directory down, too slow) → 503 ``ldap_unavailable``: fail closed;
4. the route's groups rule (any-of; ``*``: any authenticated user) → 403 ``ldap_forbidden``;
5. the caller's ``Authorization`` is removed (unless ``forward_authorization``) and the app gets
   the user, DN and groups in the identity headers.

Everything that depends only on config is decided in :func:`make_filter`, once per route.

Not here: the directory (:mod:`.directory`), the config (:mod:`.config`).
"""

from __future__ import annotations

from urllib.parse import quote

from sidecar import (
    ConfigError,
    ConfigProblem,
    Exchange,
    Filter,
    Handler,
    Response,
    RouteContext,
    SharedKey,
    SidecarError,
    log_field,
)

from .basic import NoCredentials, parse_basic
from .cache import Verdict
from .checker import Checker
from .config import LdapConfig
from .hub import HUB, Hub, build_checker, settings_key

NAME = "ldap"
#: the listener whose routes the filter guards: the one peers reach the app through
LISTENER = "inbound"
#: the name inbound routes give the app as an upstream (metrics, shared state)
APP_UPSTREAM = "@app"
#: the checker of the app's routes, as operators see it (``/upstreams``, ``/metrics``)
LDAP_CHECKER: SharedKey[Checker] = SharedKey("ldap")
#: characters sent as they are in identity headers; the rest is percent-encoded (UTF-8)
_PLAIN = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%,")
_PLAIN_DN = _PLAIN + ","


class Unauthenticated(SidecarError):
    """No usable credentials, or a wrong password: 401 (``UNAUTHENTICATED`` over gRPC)."""

    status, grpc_code, code = 401, 16, "ldap_unauthenticated"


class NotInGroup(SidecarError):
    """The user is in none of the route's groups: 403 (``PERMISSION_DENIED``)."""

    status, grpc_code, code = 403, 7, "ldap_forbidden"


class DirectoryUnavailable(SidecarError):
    """The directory gave no verdict: 503 (``UNAVAILABLE``), never a pass."""

    status, grpc_code, code = 503, 14, "ldap_unavailable"


def inbound_route_names(ctx: RouteContext) -> set[str]:
    """The names the inbound listener gives its routes (``inbound-<i>`` unless named)."""
    inbound = ctx.config.inbound
    if inbound is None:
        return set()
    names = {r.name or f"inbound-{i}" for i, r in enumerate(inbound.routes)}
    return names | {"inbound"}


def allowed_by(allow: tuple[str, ...] | None) -> frozenset[str] | None:
    """The rule as lower-cased names and DNs, ``None`` for anyone who authenticated."""
    if allow is None or "*" in allow:
        return None
    return frozenset(_normal(a) for a in allow)


def _normal(name: str) -> str:
    # DNs compare without case and without the spaces people put after commas
    return ",".join(part.strip() for part in name.split(",")).lower()


def passes(verdict: Verdict, allow: frozenset[str] | None) -> bool:
    if allow is None:
        return True
    mine = {_normal(n) for n in verdict.group_names} | {_normal(d) for d in verdict.group_dns}
    return not allow.isdisjoint(mine)


def _checker(config: LdapConfig, ctx: RouteContext) -> Checker:
    hub = ctx.resources.get(HUB)
    if isinstance(hub, Hub):
        return hub.checker(config, ctx)
    return build_checker(config, ctx.config_name)  # no running sidecar: nothing is opened


def make_filter(ctx: RouteContext) -> Filter | None:
    """The ``ldap`` filter of one inbound route, or ``None`` (off, or another listener)."""
    config = ctx.plugin_config(NAME, LdapConfig)
    if config.url is None or ctx.listener != LISTENER:
        return None
    unknown = sorted(set(config.routes) - inbound_route_names(ctx))
    if unknown:
        # a misspelt route would silently fall back to the default rule
        where = f"plugins.{NAME}.routes.{unknown[0]}"
        raise ConfigError([ConfigProblem(ctx.config_name, where, "no inbound route has this name")])
    rule = config.routes.get(ctx.route)
    identity = (config.headers.user, config.headers.dn, config.headers.groups)
    strip = tuple(h.lower() for h in identity)
    drop_authorization = not config.forward_authorization
    if rule is not None and not rule.authenticate:

        async def strip_only(exchange: Exchange, call_next: Handler) -> Response:
            for name in strip:
                exchange.headers.remove(name)
            if drop_authorization:  # a password sent here anyway does not reach the app either
                exchange.headers.remove("authorization")
            return await call_next(exchange)

        return strip_only

    allow_list = rule.allow_groups if rule is not None and rule.allow_groups is not None else None
    allow = allowed_by(allow_list if allow_list is not None else config.allow_groups)
    checker = _checker(config, ctx)
    # read by GET /ldap (its counts) and /metrics (its cache size), under the app's upstream
    ctx.shared(LDAP_CHECKER, settings_key(config), lambda: checker)
    challenge = (("www-authenticate", f'Basic realm="{config.realm}", charset="UTF-8"'),)
    max_username = config.max_username
    user_h, dn_h, groups_h = strip

    async def ldap(exchange: Exchange, call_next: Handler) -> Response:
        headers = exchange.headers
        for name in strip:
            headers.remove(name)
        try:
            given = headers.get_all("authorization")
            if len(given) > 1:  # which one would the app or a proxy behind it read?
                raise NoCredentials("more than one Authorization header")
            credentials = parse_basic(given[0] if given else None, max_username)
        except NoCredentials as e:
            raise Unauthenticated(str(e), headers=challenge) from None
        try:
            verdict = await checker.verdict(credentials)
        except Exception:  # DirectoryDown, or anything else the directory raised: fail closed
            raise DirectoryUnavailable("the directory gave no verdict") from None
        if not verdict.granted:
            raise Unauthenticated("invalid user name or password", headers=challenge)
        log_field(exchange, "ldap_user", verdict.username)
        if not passes(verdict, allow):
            raise NotInGroup("the user is in none of the groups this route allows")
        if drop_authorization:
            headers.remove("authorization")
        headers.set(user_h, quote(verdict.username, safe=_PLAIN))
        headers.set(dn_h, quote(verdict.dn, safe=_PLAIN_DN))
        headers.set(groups_h, ",".join(quote(g, safe=_PLAIN) for g in verdict.group_names))
        return await call_next(exchange)

    return ldap
