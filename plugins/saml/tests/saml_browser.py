"""A browser as far as SAML needs one: it follows the sidecar's redirect to the (in-process)
IdP, posts the IdP's auto-POST form back, keeps cookies by name (host-only, ``Secure`` ones
sent over TLS) and presents the gateway's client certificate to the mTLS front."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
from saml_idp import SSO_URL, Form, TestIdp
from saml_pki import Pki


def client(pki: Pki) -> httpx.AsyncClient:
    """An HTTPS client trusting the test CA, presenting the gateway's certificate."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return httpx.AsyncClient(verify=context, follow_redirects=False, timeout=10.0)


class Browser:
    """One browser: a cookie jar, and the steps of a login."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, idp: TestIdp) -> None:
        self.http = http
        self.base_url = base_url
        self.idp = idp
        self.cookies: dict[str, str] = {}
        self.set_cookie_lines: list[str] = []

    def _keep(self, response: httpx.Response) -> None:
        self.http.cookies.clear()  # this jar is the only one: httpx's own would send more
        for line in response.headers.get_list("set-cookie"):
            self.set_cookie_lines.append(line)
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in line:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def _cookie_header(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, path: str, **headers: str) -> httpx.Response:
        r = await self.http.get(self.base_url + path, headers={**self._cookie_header(), **headers})
        self._keep(r)
        return r

    async def post_form(self, form: Form) -> httpx.Response:
        assert form.action.startswith(self.base_url), form.action
        data = {"SAMLResponse": form.saml_response, "RelayState": form.relay_state}
        r = await self.http.post(form.action, data=data, headers=self._cookie_header())
        self._keep(r)
        return r

    async def start_login(self, path: str) -> str:
        """GET ``path`` without a session: the IdP URL it is redirected to."""
        r = await self.get(path)
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        assert location.startswith(SSO_URL + "?")
        return location

    async def login(self, path: str, **answer: Any) -> httpx.Response:
        """The whole flow for ``path``: redirect, the IdP's form (``answer``: how the IdP
        answers), the POST to the ACS; the ACS's response."""
        location = await self.start_login(path)
        return await self.post_form(self.idp.answer(location, **answer))

    async def follow(self, response: httpx.Response) -> httpx.Response:
        """GET the ``Location`` of ``response`` (a path on the sidecar)."""
        return await self.get(response.headers["location"])


Edit = Callable[[Any], None]
