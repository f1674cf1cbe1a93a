"""The login flow through a real sidecar: its inbound mTLS front, the plugin, the test IdP
(pysaml2's own IdP classes) and a browser that follows the redirect and posts the IdP's form;
then every forged, expired, replayed or misdirected Response is refused."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from lxml import etree
from saml_browser import Browser, client
from saml_idp import NS, set_times
from saml_world import SP_ID, Running

SAML = "{" + NS["saml"] + "}"


@pytest.fixture
async def browser(running: Running) -> AsyncIterator[Browser]:
    async with client(running.world.pki) as http:
        yield Browser(http, running.world.base_url, running.world.idp)


def refused(r: httpx.Response, code: str = "saml_response_refused") -> None:
    assert r.status_code in (401, 403), (r.status_code, r.text)
    assert r.headers.get("x-sidecar-error") == code
    assert "set-cookie" not in r.headers or "sidecar_saml=v1" not in r.headers["set-cookie"]
    assert "Traceback" not in r.text


def swap_value(old: str, new: str) -> Any:
    def edit(doc: etree._Element) -> None:
        for v in doc.iter(SAML + "AttributeValue"):
            if v.text == old:
                v.text = new

    return edit


async def test_login_then_the_app_gets_the_attributes(running: Running, browser: Browser) -> None:
    """A browser is sent to the IdP, comes back logged in to the page it asked for, and the app
    gets the user's attributes in headers, with the browser's own copies removed."""
    r = await browser.login("/orders?page=2")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/orders?page=2"
    session = next(line for line in browser.set_cookie_lines if line.startswith("sidecar_saml="))
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Max-Age=3600", "Path=/"):
        assert attribute in session
    page = await browser.get("/orders?page=2", **{"x-user-email": "forged@evil.test"})
    assert page.status_code == 200
    seen = running.app.requests[-1]
    assert seen.path_qs == "/orders?page=2"
    assert seen.headers["x-user-email"] == "ada@example.com"
    assert seen.headers["x-user-groups"] == "staff, admin"
    assert seen.headers["x-saml-nameid"]
    assert "sidecar_saml" not in seen.headers.get("Cookie", "")
    assert len(running.app.requests) == 1  # neither the login nor the ACS reached the app


async def test_unauthenticated_calls(running: Running, browser: Browser) -> None:
    """Without a session a POST is refused with 401, a public path passes without headers the
    browser forged, and the app never sees the unauthenticated GET."""
    r = await browser.http.post(running.world.base_url + "/orders", content=b"{}")
    refused(r, "saml_login_required")
    ok = await browser.get(
        "/healthz", **{"x-user-email": "forged@evil.test", "cookie": "a=1; sidecar_saml=v1.x"}
    )
    assert ok.status_code == 200
    assert "x-user-email" not in running.app.requests[-1].headers
    assert running.app.requests[-1].headers["Cookie"] == "a=1"
    assert (await browser.get("/orders")).status_code == 302
    assert len(running.app.requests) == 1


async def test_metadata_is_served(running: Running, browser: Browser) -> None:
    """The SP metadata names our entity ID and the ACS URL with the HTTP-POST binding."""
    r = await browser.get("/saml/metadata")
    assert r.status_code == 200
    assert f'entityID="{SP_ID}"' in r.text
    assert f'Location="{running.world.base_url}/saml/acs"' in r.text
    assert "HTTP-POST" in r.text
    assert running.app.requests == []


async def test_expired_assertion_is_refused(browser: Browser) -> None:
    """An assertion whose NotOnOrAfter passed (beyond the skew) does not log in."""

    def expire(doc: etree._Element) -> None:
        now = datetime.now(UTC)
        set_times(
            doc, not_before=now - timedelta(minutes=20), not_on_or_after=now - timedelta(minutes=5)
        )

    refused(await browser.login("/", edit=expire))


async def test_wrong_audience_is_refused(browser: Browser) -> None:
    """A genuine, signed assertion for another SP does not log in here."""

    def other(doc: etree._Element) -> None:
        audience = doc.find(".//saml:Audience", NS)
        assert audience is not None
        audience.text = "https://other.test/sp"

    refused(await browser.login("/", edit=other))


async def test_wrong_recipient_is_refused(browser: Browser) -> None:
    """An assertion meant for another ACS URL (Recipient) does not log in here."""

    def elsewhere(doc: etree._Element) -> None:
        data = doc.find(".//saml:SubjectConfirmationData", NS)
        assert data is not None
        data.set("Recipient", "https://other.test/acs")

    refused(await browser.login("/", edit=elsewhere))


async def test_unsigned_assertion_is_refused(browser: Browser) -> None:
    """A Response with no signature at all does not log in."""
    refused(await browser.login("/", sign=False))


async def test_tampered_attribute_is_refused(browser: Browser) -> None:
    """Changing an attribute after the IdP signed breaks the signature."""
    refused(
        await browser.login("/", after_signing=swap_value("ada@example.com", "root@example.com"))
    )


@pytest.mark.parametrize("where", ["before", "after", "wrapped"])
async def test_signature_wrapping_is_refused(
    browser: Browser, running: Running, where: str
) -> None:
    """XSW: a second, unsigned assertion beside (or around) the signed one never logs in."""

    def wrap(doc: etree._Element) -> None:
        signed = doc.find("saml:Assertion", NS)
        assert signed is not None
        evil = copy.deepcopy(signed)
        sig = evil.find("ds:Signature", NS)
        assert sig is not None
        evil.remove(sig)
        evil.set("ID", "evil-1")
        swap_value("ada@example.com", "root@example.com")(evil)
        if where == "before":
            signed.addprevious(evil)
        elif where == "after":
            signed.addnext(evil)
        else:  # the signed original moved inside the evil one's signature
            sig = signed.find("ds:Signature", NS)
            assert sig is not None
            signed.remove(sig)
            etree.SubElement(sig, "{" + NS["ds"] + "}Object").append(copy.deepcopy(signed))
            parent = signed.getparent()
            assert parent is not None
            parent.replace(signed, evil)
            issuer = evil.find("saml:Issuer", NS)
            assert issuer is not None
            issuer.addnext(sig)

    refused(await browser.login("/", after_signing=wrap))
    assert running.app.requests == []


async def test_replayed_response_is_refused(browser: Browser) -> None:
    """A Response that logged in once cannot log in again (captured and posted later)."""
    location = await browser.start_login("/")
    form = browser.idp.answer(location)
    assert (await browser.post_form(form)).status_code == 303
    browser.cookies.pop("sidecar_saml")  # logged out, a fresh login started: a new binding
    await browser.start_login("/")
    refused(await browser.post_form(form))


async def test_response_for_another_browser_is_refused(running: Running, browser: Browser) -> None:
    """A Response answering a login another browser started (login CSRF) is refused."""
    location = await browser.start_login("/")
    form = browser.idp.answer(location)
    async with client(running.world.pki) as http:
        other = Browser(http, running.world.base_url, running.world.idp)
        await other.start_login("/")
        refused(await other.post_form(form))


@pytest.mark.parametrize(
    ("relay", "back"),
    [
        ("https://evil.test/", "/"),
        ("//evil.test/x", "/"),
        ("/\\evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"),  # still encoded: a path here
    ],
)
async def test_open_redirect_relay_state_goes_home(browser: Browser, relay: str, back: str) -> None:
    """A RelayState that is not a path on this origin sends the browser to ``/``, never away."""
    r = await browser.login("/", relay_state=relay)
    assert r.status_code == 303
    assert r.headers["location"] == back


async def test_two_tabs_can_log_in(browser: Browser) -> None:
    """Two logins started in one browser (two tabs) can each finish."""
    first = await browser.start_login("/a")
    second = await browser.start_login("/b")
    r = await browser.post_form(browser.idp.answer(first))
    assert (r.status_code, r.headers["location"]) == (303, "/a")
    browser.cookies.pop("sidecar_saml")
    r = await browser.post_form(browser.idp.answer(second))
    assert (r.status_code, r.headers["location"]) == (303, "/b")
    assert "sidecar_saml_req" not in browser.cookies  # no login left open: deleted


async def test_forged_cookie_is_not_a_session(running: Running, browser: Browser) -> None:
    """A cookie the sidecar did not seal, or one whose bytes were changed, is no session."""
    r = await browser.login("/")
    genuine = browser.cookies["sidecar_saml"]
    for forged in (
        "v1.AAAA",
        "v1." + "A" * 200,
        genuine[:-4] + ("AAAA" if genuine[-4:] != "AAAA" else "BBBB"),
        "admin",
    ):
        browser.cookies["sidecar_saml"] = forged
        assert (await browser.get("/")).status_code == 302
    assert r.status_code == 303
    assert running.app.requests == []


async def test_acs_refuses_what_is_not_a_login_form(running: Running, browser: Browser) -> None:
    """The ACS answers only POST, refuses a form without a Response or with too many fields,
    and a body past ``max_response_bytes``; none of it reaches the app."""
    acs = running.world.base_url + "/saml/acs"
    assert (await browser.http.get(acs)).status_code == 405
    refused(await browser.http.post(acs, data={"RelayState": "/"}))
    refused(await browser.http.post(acs, content=b"&".join(b"a%d=1" % i for i in range(50))))
    big = await browser.http.post(acs, content=b"SAMLResponse=" + b"A" * 300_000)
    assert big.status_code == 413
    refused(await browser.http.post(acs, data={"SAMLResponse": "not base64 at all!"}))
    assert running.app.requests == []


async def test_wrong_destination_is_refused(browser: Browser) -> None:
    """A Response addressed (Destination) to another ACS URL does not log in here."""

    def elsewhere(doc: etree._Element) -> None:
        doc.set("Destination", "https://other.test/acs")

    refused(await browser.login("/", edit=elsewhere))


@pytest.mark.parametrize(
    ("ahead", "logs_in"), [(timedelta(seconds=30), True), (timedelta(minutes=4), False)]
)
async def test_clock_skew_is_bounded(browser: Browser, ahead: timedelta, logs_in: bool) -> None:
    """An assertion valid from slightly ahead (within ``max_skew``, 60 s) logs in; one valid
    only from minutes ahead does not."""

    def later(doc: etree._Element) -> None:
        now = datetime.now(UTC)
        set_times(doc, not_before=now + ahead, not_on_or_after=now + ahead + timedelta(minutes=5))

    r = await browser.login("/", edit=later)
    if logs_in:
        assert r.status_code == 303, r.text
    else:
        refused(r)
