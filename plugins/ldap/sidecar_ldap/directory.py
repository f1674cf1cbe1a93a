"""The directory, asked with ldap3: find the user, check the password, read the groups.

One :class:`Directory` per settings (kept across reloads that leave them alone, :mod:`.hub`).
ldap3 is blocking, so each check runs in one of ``pool_size`` worker threads; a thread takes a
**service** connection (bound as ``bind_dn``, kept open in a pool) for the searches and a
**bind** connection (kept open too, re-bound as each user, never used for anything else) for the
password. A connection that failed is closed, never returned; a search on a pooled connection
the server had closed is retried once on a new one. Every wait is bounded: ``connect_timeout``
for TCP and TLS, ``timeout`` for each LDAP answer and for the whole check (the caller gives up
then; a queued check is cancelled, a running one ends at its socket timeout).

The check: a user filter with the name escaped per RFC 4515 (or the ``user.dn`` template,
RFC 4514), exactly one entry or refused, a simple bind as that DN (``invalidCredentials`` and any
other refusal: refused), then the groups (the entry's ``memberOf``, or a group search). The
directory not answering, refusing the service account, or being busy raises
:class:`DirectoryDown` (the call gets 503: fail closed).

ldap3 is imported here only, and this module only when the plugin is configured.

Not here: the cache (:mod:`.cache`), HTTP (:mod:`.gate`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException

from .cache import Verdict
from .config import LdapConfig
from .escape import dn_value, fill, filter_value
from .names import first_rdn_value

log = logging.getLogger("sidecar.plugin.ldap")

#: LDAP result codes (RFC 4511 §4.1.9) that mean "the directory cannot answer now"
_UNAVAILABLE = frozenset({51, 52, 80})  # busy, unavailable, other
_SIZE_LIMIT_EXCEEDED = 4
#: checks waiting for a thread, per thread, before the directory is called busy
_QUEUE_PER_THREAD = 16
#: a refused service account is logged at most this often (seconds)
REFUSAL_LOG_EVERY = 10.0


class DirectoryDown(Exception):
    """The directory gave no verdict (unreachable, too slow, busy, service account refused)."""


def _entries(conn: Any) -> list[dict[str, Any]]:
    return [r for r in (conn.response or []) if r.get("type") == "searchResEntry"]


def _values(entry: dict[str, Any], attribute: str) -> list[str]:
    raw = entry.get("raw_attributes") or {}
    for name, values in raw.items():
        if name.lower() == attribute.lower():
            return [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
            ]
    return []


class Directory:
    """Checks user names and passwords against one directory (see the module docstring)."""

    def __init__(self, config: LdapConfig, service_password: Callable[[], str]) -> None:
        assert config.url is not None and config.bind_dn is not None
        self.config = config
        self._password = service_password
        self._executor = ThreadPoolExecutor(config.pool_size, thread_name_prefix="sidecar-ldap")
        self._lock = threading.Lock()
        self._service: list[Any] = []
        self._binders: list[Any] = []
        self._waiting = 0
        self._max_waiting = config.pool_size * _QUEUE_PER_THREAD
        self._closed = False
        self._refusal_logged = -REFUSAL_LOG_EVERY
        self._tls = None
        if config.url.startswith("ldaps://") or config.start_tls:
            # CERT_REQUIRED: ldap3 then also matches the host name (ldaps and StartTLS alike)
            host = urlsplit(config.url).hostname
            self._tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca, sni=host)

    # --- the asyncio side ----------------------------------------------------------------------

    async def check(self, username: str, password: str) -> Verdict:
        """The directory's verdict on ``username`` and ``password``; :class:`DirectoryDown`
        when it gives none within ``timeout``."""
        if self._closed:
            raise DirectoryDown("the directory client was closed")
        if self._waiting >= self._max_waiting:
            raise DirectoryDown("too many checks waiting for the directory")
        self._waiting += 1
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._check, username, password)
            return await asyncio.wait_for(future, self.config.timeout)
        except TimeoutError:
            raise DirectoryDown(f"no answer within {self.config.timeout:g}s") from None
        finally:
            self._waiting -= 1

    async def aclose(self) -> None:
        """Close every pooled connection; checks still running close theirs when they end."""
        self._closed = True
        with self._lock:
            conns, self._service, self._binders = self._service + self._binders, [], []
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self._unbind_all, conns)

    @staticmethod
    def _unbind_all(conns: list[Any]) -> None:
        for conn in conns:
            try:
                conn.unbind()
            except LDAPException:  # already gone: nothing to release
                pass

    # --- connections (worker threads) ----------------------------------------------------------

    def _open(self, user: str | None, password: str | None) -> Any:
        cfg = self.config
        assert cfg.url is not None
        # a Server per connection: ldap3's Server remembers an address that failed and skips it
        # for minutes, which would keep a restarted directory "down" long after it is back
        server = ldap3.Server(
            cfg.url, get_info=ldap3.NONE, tls=self._tls, connect_timeout=cfg.connect_timeout
        )
        conn = ldap3.Connection(
            server,
            user=user,
            password=password,
            authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
            client_strategy=ldap3.SYNC,
            auto_bind=ldap3.AUTO_BIND_NONE,
            read_only=True,
            # ldap3 packs it into SO_RCVTIMEO: whole seconds; the check as a whole is bounded
            # by `timeout` exactly on the asyncio side
            receive_timeout=max(1, math.ceil(cfg.timeout)),
            raise_exceptions=False,
            return_empty_attributes=False,
        )
        conn.open()
        if cfg.start_tls and not conn.start_tls():
            self._unbind_all([conn])
            raise DirectoryDown("StartTLS was refused")
        return conn

    def _take_service(self) -> Any:
        with self._lock:
            if self._service:
                return self._service.pop()
        conn = self._open(self.config.bind_dn, self._password())
        if not conn.bind():
            code = (conn.result or {}).get("result")
            self._unbind_all([conn])
            now = time.monotonic()
            if now - self._refusal_logged >= REFUSAL_LOG_EVERY:  # every call would repeat it
                self._refusal_logged = now
                log.error(
                    "the LDAP service account's bind was refused",
                    extra={"fields": {"ldap_result": code, "bind_dn": self.config.bind_dn}},
                )
            raise DirectoryDown(f"the service account's bind was refused (result {code})")
        conn.password = None  # the pool keeps the connection, not the password
        return conn

    def _give_back(self, pool: list[Any], conn: Any) -> None:
        with self._lock:
            if not self._closed and len(pool) < self.config.pool_size:
                pool.append(conn)
                return
        self._unbind_all([conn])

    def _search(self, base: str, flt: str, scope: str, attributes: list[str], limit: int) -> Any:
        """One search on a service connection, retried once on a new connection when the
        pooled one turns out dead; the connection is returned with its response read."""
        for attempt in (1, 2):
            conn = self._take_service()
            try:
                conn.search(base, flt, search_scope=scope, attributes=attributes, size_limit=limit)
                code = (conn.result or {}).get("result")
                if code is None:  # no answer at all: the connection is gone, not "no entry"
                    raise LDAPException("no result")
            except LDAPException as e:
                self._unbind_all([conn])
                if attempt == 2:
                    raise DirectoryDown(f"search failed: {type(e).__name__}") from None
                continue
            entries = _entries(conn)
            if code in _UNAVAILABLE:
                self._unbind_all([conn])
                raise DirectoryDown(f"the directory answered result {code}")
            self._give_back(self._service, conn)
            return code, entries
        raise AssertionError("unreachable")

    def _bind_as(self, dn: str, password: str) -> bool:
        """Whether ``dn`` binds with ``password`` (a bind connection, re-bound per user)."""
        for attempt in (1, 2):
            with self._lock:
                conn = self._binders.pop() if self._binders else None
            try:
                if conn is None:
                    conn = self._open(None, None)
                conn.user, conn.password, conn.authentication = dn, password, ldap3.SIMPLE
                ok = bool(conn.bind())
                if not ok and (conn.result or {}).get("result") is None:
                    raise LDAPException("no result")  # the connection is gone, not a refusal
            except LDAPException as e:
                if conn is not None:
                    self._unbind_all([conn])
                if attempt == 2:
                    raise DirectoryDown(f"bind failed: {type(e).__name__}") from None
                continue
            conn.password = None
            code = (conn.result or {}).get("result")
            if code in _UNAVAILABLE:
                self._unbind_all([conn])
                raise DirectoryDown(f"the directory answered result {code}")
            self._give_back(self._binders, conn)
            return ok
        raise AssertionError("unreachable")

    # --- the check (worker thread) -------------------------------------------------------------

    def _check(self, username: str, password: str) -> Verdict:
        try:
            return self._ask(username, password)
        except LDAPException as e:  # opening a connection failed: refused, unreachable, TLS
            raise DirectoryDown(f"{type(e).__name__}: {str(e)[:200]}") from None

    def _ask(self, username: str, password: str) -> Verdict:
        cfg = self.config
        attrs = [cfg.user.name_attribute]
        if cfg.groups.source == "member_of":
            attrs.append(cfg.groups.attribute)
        if cfg.user.dn is not None:
            dn = fill(cfg.user.dn, {"username": username}, dn_value)
            if not self._bind_as(dn, password):
                return Verdict(False)
            _, found = self._search(dn, "(objectClass=*)", ldap3.BASE, attrs, 1)
        else:
            flt = fill(cfg.user.filter, {"username": username}, filter_value)
            scope = ldap3.SUBTREE if cfg.user.scope == "subtree" else ldap3.LEVEL
            _, found = self._search(cfg.user.base, flt, scope, attrs, 2)
            if len(found) != 1:
                return Verdict(False)  # no such user, or a filter matching two: refused alike
            dn = found[0]["dn"]
            if not self._bind_as(dn, password):
                return Verdict(False)
        if not found:
            return Verdict(False)
        entry = found[0]
        names = _values(entry, cfg.user.name_attribute)
        user = names[0] if names else username
        group_names, group_dns = self._groups(username, dn, entry)
        return Verdict(True, user, dn, group_names, group_dns)

    def _groups(
        self, username: str, dn: str, entry: dict[str, Any]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        g = self.config.groups
        if g.source == "none":
            return (), ()
        if g.source == "member_of":
            dns = _values(entry, g.attribute)[: g.max_groups]
            names = [first_rdn_value(d, g.name_attribute) for d in dns]
            return tuple(n for n in names if n), tuple(dns)
        flt = fill(g.filter, {"dn": dn, "username": username}, filter_value)
        code, found = self._search(g.base, flt, ldap3.SUBTREE, [g.name_attribute], g.max_groups)
        if code == _SIZE_LIMIT_EXCEEDED:
            log.warning(
                "an LDAP user is in more groups than groups.max_groups; the rest are ignored",
                extra={"fields": {"max_groups": g.max_groups}},
            )
        names = []
        for group in found:
            values = _values(group, g.name_attribute)
            if values:
                names.append(values[0])
        return tuple(names), tuple(group["dn"] for group in found)
