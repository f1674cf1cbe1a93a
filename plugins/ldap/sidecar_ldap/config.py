"""The ``plugins.ldap`` section: which directory, how users and groups are found, who passes.

Validated once (``sidecar check``, start-up, reload) into frozen models; a misspelt key or a
template without its placeholder is refused at its key path. Secrets are references only
(``bind_password: {file: ...}``): the model never holds a password.

Not here: reading the secret (:mod:`.hub`), talking to the directory (:mod:`.directory`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from sidecar import Duration, Model, SecretRef

#: A header name as HTTP allows it (token characters).
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
#: The realm is sent quoted in ``WWW-Authenticate``: printable ASCII without ``"`` or ``\``.
REALM = r"^[ !#-\[\]-~]+$"


class UserLookup(Model):
    """``user``: how a user name becomes the entry the password is checked against."""

    #: where users are searched for (``ou=people,dc=example,dc=org``)
    base: str = Field(default="", max_length=1024)
    #: the search filter; ``{username}`` is replaced by the user name escaped per RFC 4515
    filter: str = Field(default="(&(objectClass=inetOrgPerson)(uid={username}))", max_length=1024)
    #: ``subtree`` (everything under ``base``) or ``one`` (its direct children)
    scope: Literal["subtree", "one"] = "subtree"
    #: the attribute whose value the app gets as the user name (the name typed when absent)
    name_attribute: str = Field(default="uid", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    #: instead of a search: the DN to bind as, ``{username}`` escaped per RFC 4514
    #: (``uid={username},ou=people,dc=example,dc=org``)
    dn: str | None = Field(default=None, max_length=1024)

    @field_validator("filter")
    @classmethod
    def _filter_has_user(cls, v: str) -> str:
        if "{username}" not in v:
            raise ValueError("the filter must contain {username}")
        if not (v.startswith("(") and v.endswith(")")):
            raise ValueError("an LDAP filter is enclosed in parentheses")
        return v

    @field_validator("dn")
    @classmethod
    def _dn_has_user(cls, v: str | None) -> str | None:
        if v is not None and "{username}" not in v:
            raise ValueError("the DN template must contain {username}")
        return v


class GroupLookup(Model):
    """``groups``: where a user's groups come from."""

    #: ``member_of``: the user entry's ``attribute`` (OpenLDAP's memberof overlay, Active
    #: Directory); ``search``: groups under ``base`` matching ``filter``; ``none``: no groups
    source: Literal["member_of", "search", "none"] = "member_of"
    #: the user attribute listing group DNs (``source: member_of``)
    attribute: str = Field(default="memberOf", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    #: where groups are searched for (``source: search``)
    base: str = Field(default="", max_length=1024)
    #: ``{dn}`` (the user's DN) and ``{username}`` are escaped per RFC 4515
    filter: str = Field(
        default="(|(&(objectClass=groupOfNames)(member={dn}))"
        "(&(objectClass=posixGroup)(memberUid={username})))",
        max_length=2048,
    )
    #: the group attribute that is its name (in allow rules and the groups header)
    name_attribute: str = Field(default="cn", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    #: groups read per user at most; more are ignored (and logged)
    max_groups: int = Field(default=256, ge=1, le=10_000)

    @field_validator("filter")
    @classmethod
    def _filter_has_placeholder(cls, v: str) -> str:
        if "{dn}" not in v and "{username}" not in v:
            raise ValueError("the filter must contain {dn} or {username}")
        if not (v.startswith("(") and v.endswith(")")):
            raise ValueError("an LDAP filter is enclosed in parentheses")
        return v


class IdentityHeaders(Model):
    """``headers``: what the app is told; any value a caller sent under these is removed."""

    user: str = Field(default="x-auth-user", pattern=HEADER_NAME, max_length=128)
    dn: str = Field(default="x-auth-dn", pattern=HEADER_NAME, max_length=128)
    groups: str = Field(default="x-auth-groups", pattern=HEADER_NAME, max_length=128)


class CacheSettings(Model):
    """``cache``: verdicts kept in memory, keyed by a salted hash of user and password."""

    #: how long a successful check is reused (``0s``: every call asks the directory)
    ttl: Duration = 60.0
    #: how long a refused password is remembered (shorter: a fixed password works soon)
    failure_ttl: Duration = 5.0
    #: verdicts kept at most; the least recently used goes first
    max_entries: int = Field(default=10_000, ge=1, le=1_000_000)


class RouteRule(Model):
    """``routes.<inbound route name>``: that route's own rule."""

    #: any-of: the user must be in one of these groups (names or DNs); ``null``: any
    #: authenticated user
    allow_groups: tuple[str, ...] | None = None
    #: ``false``: calls on this route pass without credentials (identity headers still removed)
    authenticate: bool = True


class LdapConfig(Model):
    """``plugins.ldap``. Without ``url`` the plugin changes no call."""

    #: ``ldap://host:389`` or ``ldaps://host:636``; ``null``: off
    url: str | None = Field(default=None, pattern=r"^ldaps?://[^/?#\s]+/?$")
    #: upgrade an ``ldap://`` connection with StartTLS before any bind (refused with ldaps)
    start_tls: bool = False
    #: the CA file that signs the directory's certificate (ldaps/StartTLS); ``null``: the system's
    ca: str | None = None
    #: the service account that searches users and groups
    bind_dn: str | None = Field(default=None, max_length=1024)
    bind_password: SecretRef | None = None
    user: UserLookup = UserLookup()
    groups: GroupLookup = GroupLookup()
    #: any-of groups for routes without a rule of their own; ``null``: any authenticated user
    allow_groups: tuple[str, ...] | None = None
    routes: dict[str, RouteRule] = {}
    realm: str = Field(default="sidecar", pattern=REALM, max_length=128)
    headers: IdentityHeaders = IdentityHeaders()
    #: ``false`` (default): the caller's ``Authorization`` (its password) never reaches the app
    forward_authorization: bool = False
    cache: CacheSettings = CacheSettings()
    #: service-account connections kept open, and directory checks in flight at once
    pool_size: int = Field(default=4, ge=1, le=64)
    #: TCP connect (and TLS handshake) to the directory
    connect_timeout: Duration = 2.0
    #: one whole check (search, bind, groups); past it the call gets 503
    timeout: Duration = 5.0
    #: the longest user name accepted (bytes after UTF-8 decoding: characters)
    max_username: int = Field(default=256, ge=1, le=4096)

    @model_validator(mode="after")
    def _complete(self) -> LdapConfig:
        if self.url is None:
            return self
        missing = [k for k in ("bind_dn", "bind_password") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"with url set, {' and '.join(missing)} must be given")
        if self.user.dn is None and not self.user.base:
            raise ValueError("user.base is required unless user.dn is given")
        if self.groups.source == "search" and not self.groups.base:
            raise ValueError("groups.base is required with groups.source: search")
        if self.start_tls and self.url.startswith("ldaps://"):
            raise ValueError("start_tls is for ldap:// urls; ldaps:// is TLS already")
        if self.connect_timeout <= 0 or self.timeout <= 0:
            raise ValueError("connect_timeout and timeout must be longer than 0s")
        if self.cache.failure_ttl > self.cache.ttl and self.cache.ttl > 0:
            raise ValueError("cache.failure_ttl must not be longer than cache.ttl")
        return self
