"""A test identity provider built with pysaml2's own IdP classes (``saml2.server.Server``), run
in-process: the browser (:mod:`browser`) hands it the redirect URL and gets the auto-POST form.

:meth:`TestIdp.answer` issues a genuine signed Response; its keyword arguments make the forged
ones the adversarial tests post (unsigned, expired, another audience, a second unsigned
assertion, a tampered attribute), each by editing the XML the way an attacker would and, where
the attack needs it, signing with the IdP's real key.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml_pki import Pki

IDP_ID = "https://idp.test/idp"
SSO_URL = "https://idp.test/sso"
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
#: who logs in unless a test says otherwise
USER = {
    "mail": ["ada@example.com"],
    "givenName": ["Ada"],
    "eduPersonAffiliation": ["staff", "admin"],
}


@dataclass(frozen=True)
class Form:
    """The auto-POST form the IdP answers with: where it posts and its two fields."""

    action: str
    saml_response: str
    relay_state: str


def _stamp(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class TestIdp:
    """pysaml2's IdP with the test's key, trusting one SP by its metadata."""

    __test__ = False  # not a test class

    def __init__(self, pki: Pki, sp_entity_id: str, sp_metadata: str) -> None:
        self.pki = pki
        self.sp_entity_id = sp_entity_id
        config = IdPConfig()
        config.load(
            {
                "entityid": IDP_ID,
                "service": {
                    "idp": {
                        "endpoints": {"single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)]},
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    }
                },
                "key_file": str(pki.idp_key),
                "cert_file": str(pki.idp_cert),
                "metadata": {"inline": [sp_metadata]},
                "xmlsec_binary": shutil.which("xmlsec1"),
            }
        )
        self.server = Server(config=config)
        self.metadata = create_metadata_string(None, config=config, valid=None).decode()

    def write_metadata(self, path: Path) -> Path:
        path.write_text(self.metadata)
        return path

    def request_of(self, location: str) -> tuple[str, str, str]:
        """``(request_id, acs_url, relay_state)`` of an HTTP-Redirect AuthnRequest URL."""
        query = parse_qs(urlsplit(location).query)
        req = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        msg = req.message
        return msg.id, msg.assertion_consumer_service_url, query.get("RelayState", [""])[0]

    def answer(
        self,
        location: str,
        *,
        identity: dict[str, list[str]] | None = None,
        sign: bool = True,
        edit: Callable[[etree._Element], None] | None = None,
        after_signing: Callable[[etree._Element], None] | None = None,
        relay_state: str | None = None,
    ) -> Form:
        """The form answering the AuthnRequest in ``location``: a signed assertion for
        :data:`USER`; ``edit`` changes the assertion before it is signed, ``after_signing``
        after (``sign=False``: never signed)."""
        request_id, acs_url, relay = self.request_of(location)
        xml = self.server.create_authn_response(
            identity or USER,
            in_response_to=request_id,
            destination=acs_url,
            sp_entity_id=self.sp_entity_id,
            userid="ada",
            name_id_policy=None,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_assertion=False,
            sign_response=False,
        )
        doc = etree.fromstring(str(xml).encode())
        if edit is not None:
            edit(doc)
        if sign:
            doc = self.sign_assertion(doc)
        if after_signing is not None:
            after_signing(doc)
        encoded = etree.tostring(doc).decode()
        # the browser reads this form, as it would read pysaml2's own HTML
        info = self.server.apply_binding(
            BINDING_HTTP_POST,
            encoded,
            acs_url,
            relay if relay_state is None else relay_state,
            response=True,
        )
        return parse_form(info["data"])

    def sign_assertion(self, doc: etree._Element) -> etree._Element:
        """``doc`` with its (first) assertion signed by the IdP's key (enveloped signature)."""
        assertion = doc.find("saml:Assertion", NS)
        assert assertion is not None
        ident = assertion.get("ID")
        template = etree.fromstring(
            str(pre_signature_part(ident, self.server.sec.my_cert, 1)).encode()
        )
        issuer = assertion.find("saml:Issuer", NS)
        assert issuer is not None
        issuer.addnext(template)
        signed = self.server.sec.sign_statement(
            etree.tostring(doc).decode(), node_name=ASSERTION, node_id=ident
        )
        return etree.fromstring(signed.encode() if isinstance(signed, str) else signed)


def parse_form(page: str) -> Form:
    """The action and hidden fields of an auto-POST page."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    assert action is not None, page[:300]
    return Form(
        html.unescape(action.group(1)),
        html.unescape(fields["SAMLResponse"]),
        html.unescape(fields.get("RelayState", "")),
    )


def set_times(doc: etree._Element, *, not_before: datetime, not_on_or_after: datetime) -> None:
    """Every time condition of the assertion moved (Conditions and SubjectConfirmationData)."""
    saml = "{" + NS["saml"] + "}"
    for el in doc.iter(saml + "Conditions", saml + "SubjectConfirmationData"):
        if el.get("NotBefore") is not None or el.tag.endswith("Conditions"):
            el.set("NotBefore", _stamp(not_before))
        el.set("NotOnOrAfter", _stamp(not_on_or_after))


def expired(doc: etree._Element) -> None:
    """An assertion whose validity ended ten minutes ago."""
    now = datetime.now(UTC)
    set_times(
        doc, not_before=now - timedelta(minutes=20), not_on_or_after=now - timedelta(minutes=10)
    )
