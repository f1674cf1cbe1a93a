"""The service provider's SAML work, done by pysaml2 (and ``xmlsec1`` for signatures).

:class:`ServiceProvider` builds one pysaml2 client from the validated section and offers the
three things the filter needs: an AuthnRequest as an HTTP-Redirect ``Location``, a posted
Response checked into a :class:`Login`, and our SP metadata. pysaml2 checks the signature (on the
assertion or the response: one is required), the audience, Destination and Recipient against our
ACS URL, the time conditions with ``max_skew`` and InResponseTo against the one request this
browser started; it refuses XML it cannot validate against the schema (a second, unsigned
assertion included). What pysaml2 does not do is here: one assertion per response, and keeping
no per-user state (its identity cache would grow forever).

Imported only when an ``idp`` is configured: pysaml2 is heavy and runs ``xmlsec1`` by
subprocess, so :meth:`ServiceProvider.check` is blocking and is run in a thread by the filter.
"""

from __future__ import annotations

__all__ = ["Login", "Refused", "ServiceProvider"]

import base64
import binascii
import calendar
import logging
import shutil
from dataclasses import dataclass
from typing import Any

# pysaml2 ships no type information
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT  # type: ignore[import-untyped]
from saml2.client import Saml2Client  # type: ignore[import-untyped]
from saml2.config import SPConfig  # type: ignore[import-untyped]
from saml2.metadata import create_metadata_string  # type: ignore[import-untyped]
from saml2.time_util import str_to_time  # type: ignore[import-untyped]

from .config import SamlConfig

log = logging.getLogger("sidecar.saml")
#: an attribute value longer than this is refused (headers are not a document store)
MAX_VALUE_CHARS = 1024


class Refused(Exception):
    """A Response we do not accept; ``reason`` is a short, fixed word for logs (no input)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Login:
    """What a checked Response says: who, their attributes, and the assertion's identity."""

    name_id: str
    attributes: dict[str, list[str]]
    assertion_id: str
    #: seconds since the epoch after which the assertion is no longer valid
    not_on_or_after: float


class _NoPopulation:
    """Stands in for pysaml2's per-user identity cache: the sidecar keeps users in cookies,
    and the cache would otherwise grow by one entry per login, forever."""

    def add_information_about_person(self, session_info: Any) -> None:
        return None


class ServiceProvider:
    """One pysaml2 client for one validated ``plugins.saml`` section."""

    def __init__(self, cfg: SamlConfig) -> None:
        assert cfg.idp is not None and cfg.entity_id and cfg.base_url
        self.idp = cfg.idp.entity_id
        self.acs_url = cfg.base_url + cfg.acs_path
        settings: dict[str, Any] = {
            "entityid": cfg.entity_id,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)]
                    },
                    # a signature is required, on the assertion or on the whole response
                    "want_assertions_or_response_signed": True,
                    "want_assertions_signed": False,
                    "want_response_signed": False,
                    "allow_unsolicited": False,
                    "authn_requests_signed": False,
                    "idp": {self.idp: None},
                },
            },
            "metadata": {"local": [cfg.idp.metadata_file]},
            "accepted_time_diff": int(cfg.max_skew),
            "xmlsec_binary": cfg.xmlsec_binary or shutil.which("xmlsec1"),
            "allow_unknown_attributes": True,
        }
        # pysaml2 logs each refusal at ERROR with the document in it (attacker-controlled
        # text, a user's attributes): silenced unless someone set its level on purpose; the
        # filter logs a short reason instead
        library_log = logging.getLogger("saml2")
        if library_log.level == logging.NOTSET:
            library_log.setLevel(logging.CRITICAL)
        config = SPConfig()
        config.load(settings)
        self._client = Saml2Client(config=config)
        self._client.users = _NoPopulation()
        self._metadata: str = create_metadata_string(None, config=config, valid=None).decode()

    @property
    def metadata(self) -> str:
        """Our SP metadata (entity ID, ACS URL and binding), XML."""
        return self._metadata

    def login_redirect(self, relay_state: str) -> tuple[str, str]:
        """``(request_id, location)``: a new AuthnRequest, sent with HTTP-Redirect."""
        request_id, info = self._client.prepare_for_authenticate(
            entityid=self.idp,
            relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT,
            response_binding=BINDING_HTTP_POST,
        )
        location = dict(info["headers"])["Location"]
        return str(request_id), str(location)

    def check(self, saml_response: str, request_id: str) -> Login:
        """The login a posted ``SAMLResponse`` proves, answering ``request_id``; raises
        :class:`Refused`. Blocking (runs ``xmlsec1``)."""
        try:
            xml = base64.b64decode(saml_response, validate=True)
        except (binascii.Error, ValueError):
            raise Refused("not_base64") from None
        if xml.count(b"Assertion ") + xml.count(b"Assertion>") == 0:
            raise Refused("no_assertion")
        try:
            response = self._client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={request_id: ""}
            )
        except Exception as e:  # noqa: BLE001 - pysaml2 raises many kinds; each is a refusal
            # the class name says what failed (signature, audience, time...); the message may
            # quote the document, so it is logged only at debug
            log.debug("saml response refused: %s: %s", type(e).__name__, e)
            raise Refused(_reason(e)) from None
        if response is None:
            raise Refused("not_accepted")  # pysaml2 returns None for a wrong Destination
        if response.assertion is None:
            raise Refused("no_assertion")
        if len(response.response.assertion) != 1 or response.response.encrypted_assertion:
            raise Refused("not_one_assertion")  # one plain assertion: nothing to confuse
        assertion = response.assertion
        _check_confirmation(assertion, self.acs_url, request_id)
        name_id = response.name_id
        if name_id is None or not name_id.text:
            raise Refused("no_name_id")
        conditions = assertion.conditions
        ends = conditions.not_on_or_after if conditions is not None else None
        if not ends:
            raise Refused("no_time_limit")
        attributes = {
            str(k): [str(v)[:MAX_VALUE_CHARS] for v in vs if isinstance(v, str)]
            for k, vs in (response.ava or {}).items()
        }
        return Login(
            name_id=str(name_id.text).strip()[:MAX_VALUE_CHARS],
            attributes=attributes,
            assertion_id=str(assertion.id),
            not_on_or_after=float(calendar.timegm(str_to_time(ends))),
        )


def _check_confirmation(assertion: Any, acs_url: str, request_id: str) -> None:
    """Every bearer confirmation names our ACS URL as Recipient and answers this request
    (pysaml2 checks the Response's Destination, not the assertion's Recipient)."""
    subject = assertion.subject
    confirmations = subject.subject_confirmation if subject is not None else []
    if not confirmations:
        raise Refused("no_subject_confirmation")
    for confirmation in confirmations:
        data = confirmation.subject_confirmation_data
        if data is None or data.recipient != acs_url:
            raise Refused("recipient")
        if data.in_response_to is not None and data.in_response_to != request_id:
            raise Refused("in_response_to")


def _reason(e: Exception) -> str:
    """A short word for why pysaml2 refused a response, from its exception class only."""
    name = type(e).__name__
    table = {
        "SignatureError": "signature_invalid",
        "MissingSignature": "signature_missing",
        "SigverError": "signature_invalid",
        "ResponseLifetimeExceed": "expired",
        "ToEarly": "not_yet_valid",
        "TimeoutError": "expired",
        "UnsolicitedResponse": "unsolicited",
        "VerificationError": "not_valid",
        "StatusError": "idp_status",
        "IncorrectlySigned": "signature_invalid",
        "XmlschemaError": "schema_invalid",
        "AudienceRestrictionFailed": "audience",
        "InvalidAssertion": "assertion_invalid",
        "DestinationError": "destination",
    }
    if name in table:
        return table[name]
    if "AudienceRestriction" in str(e)[:200]:  # pysaml2 raises a bare Exception for it
        return "audience"
    return "not_valid" if "Valid" in name else "refused"
