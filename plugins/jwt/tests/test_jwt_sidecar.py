"""Through a real sidecar on 127.0.0.1: egress calls and the inbound mTLS listener checked
against a real JWKS server (aiohttp), its keys rotated, flooded and taken down; and the section
checked by ``sidecar check``."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jwt_jwks_server import JwksServer
from jwt_pki import certs
from jwt_signer import AUDIENCE, ISSUER, Keys, claims, sign, unsigned
from sidecar.testing import FakeUpstream, running_sidecar

import sidecar_jwt

SIDECAR = str(Path(sys.executable).with_name("sidecar"))
WEB = "spiffe://cluster.local/ns/shop/sa/web"


def jwt_section(jwks: JwksServer, **over: Any) -> dict[str, Any]:
    policy = over.pop("policy", {"provider": "main"})
    return {
        "providers": {
            "main": {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "algorithms": ["RS256", "ES256", "EdDSA"],
                "jwks": {"url": jwks.url, "min_refetch_interval": "200ms", **over},
                "claims_to_headers": {"sub": "x-user"},
            }
        },
        "egress": {"upstreams": {"shop": policy}},
    }


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **more}


async def test_egress_calls_are_checked_and_carry_the_claims(
    jwks_server: JwksServer, keys: Keys, fake_upstream: FakeUpstream
) -> None:
    """A valid token reaches the upstream with x-user from its sub (a forged x-user is
    replaced); an invalid one gets 401, x-sidecar-error and the Bearer challenge, and never
    reaches it."""
    jwks_server.serve(keys.jwks())
    config = {
        "upstreams": {"shop": {"url": fake_upstream.url}},
        "plugins": {"jwt": jwt_section(jwks_server)},
    }
    async with running_sidecar(config, plugins=[sidecar_jwt]) as s:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as client:
            good = await client.get(
                "/shop/orders",
                headers=bearer(sign(keys.okp, "EdDSA", claims()), **{"x-user": "root"}),
            )
            bad = await client.get("/shop/orders", headers=bearer(unsigned(claims())))
            none = await client.get("/shop/orders")
    assert good.status_code == 200
    assert [
        [v for k, v in r.raw_headers if k.lower() == "x-user"] for r in fake_upstream.requests
    ] == [["user-1"]]
    assert (bad.status_code, bad.headers["x-sidecar-error"]) == (401, "jwt_invalid")
    assert bad.headers["www-authenticate"].startswith('Bearer realm="main", error="invalid_token"')
    assert "Traceback" not in bad.text and len(bad.text.splitlines()) <= 1
    assert (none.status_code, none.headers["www-authenticate"]) == (401, 'Bearer realm="main"')
    assert len(fake_upstream.requests) == 1


async def test_rotation_a_flood_of_kids_and_an_outage(
    jwks_server: JwksServer, keys: Keys, next_keys: Keys, fake_upstream: FakeUpstream
) -> None:
    """The issuer rotates: a token of the new key passes after one refetch. Five hundred
    tokens with random kids cost the JWKS endpoint one request per min_refetch_interval, not
    one each. With the endpoint down, the keys held still serve."""
    jwks_server.serve(keys.jwks())
    config = {
        "upstreams": {"shop": {"url": fake_upstream.url}},
        "plugins": {"jwt": jwt_section(jwks_server)},
    }
    async with running_sidecar(config, plugins=[sidecar_jwt]) as s:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as client:
            old = await client.get("/shop/", headers=bearer(sign(keys.rsa, "RS256", claims())))
            assert (old.status_code, jwks_server.hits) == (200, 1)
            jwks_server.serve({"keys": keys.jwks()["keys"] + next_keys.jwks()["keys"]})
            await asyncio.sleep(0.25)  # past min_refetch_interval: the refetch is allowed
            new = await client.get("/shop/", headers=bearer(sign(next_keys.ec, "ES256", claims())))
            assert (new.status_code, jwks_server.hits) == (200, 1)

            flood = [sign(next_keys.rsa, "RS256", claims(), kid=f"random-{i}") for i in range(500)]
            started = time.monotonic()
            answers = await asyncio.gather(
                *(client.get("/shop/", headers=bearer(t)) for t in flood)
            )
            assert {a.status_code for a in answers} == {401}
            # one refetch per 200 ms window at most, however many kids: not one per token
            windows = (time.monotonic() - started) / 0.2
            assert jwks_server.hits <= 2 + windows and jwks_server.hits < 50

            jwks_server.serve(next_keys.jwks(), failing=True)
            await asyncio.sleep(0.25)
            stale = await client.get(
                "/shop/", headers=bearer(sign(next_keys.rsa, "RS256", claims(), kid="rsa-9"))
            )
            held = await client.get("/shop/", headers=bearer(sign(next_keys.ec, "ES256", claims())))
    assert jwks_server.hits == 1  # the endpoint was asked (and failed)
    assert stale.status_code == 401  # unknown kid, the endpoint down: no key
    assert held.status_code == 200  # the keys held serve through the outage


async def test_an_issuer_down_from_the_start_is_a_503(
    jwks_server: JwksServer, keys: Keys, fake_upstream: FakeUpstream
) -> None:
    """No keys ever fetched: 503 jwt_keys_unavailable, not a 401 the client would act on."""
    jwks_server.serve(keys.jwks(), failing=True)
    config = {
        "upstreams": {"shop": {"url": fake_upstream.url}},
        "plugins": {"jwt": jwt_section(jwks_server)},
    }
    async with running_sidecar(config, plugins=[sidecar_jwt]) as s:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as client:
            r = await client.get("/shop/", headers=bearer(sign(keys.rsa, "RS256", claims())))
    assert (r.status_code, r.headers["x-sidecar-error"]) == (503, "jwt_keys_unavailable")
    assert fake_upstream.requests == []


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    """A CA, the sidecar's certificate (for 127.0.0.1) and a peer's, made by `sidecar certs`."""
    certs("init-ca", "--out", str(tmp_path / "ca"), "--trust-domain", "cluster.local")
    sa = "spiffe://cluster.local/ns/shop/sa/"
    args = ["--ca", str(tmp_path / "ca")]
    certs(
        "issue",
        *args,
        "--spiffe-id",
        sa + "payments",
        "--out",
        str(tmp_path / "me"),
        "--ip",
        "127.0.0.1",
    )
    certs("issue", *args, "--spiffe-id", WEB, "--out", str(tmp_path / "web"))
    return tmp_path


async def test_inbound_peers_need_a_token_and_admin_needs_the_role(
    jwks_server: JwksServer, keys: Keys, mesh: Path
) -> None:
    """On the inbound mTLS listener every call needs a valid token; /admin needs the admin
    role (403 insufficient_scope without it); /healthz is not checked, but a forged x-user
    is removed there too."""
    jwks_server.serve(keys.jwks())
    section = jwt_section(jwks_server)
    del section["egress"]
    section["inbound"] = {
        "provider": "main",
        "routes": {
            "health": None,
            "admin": {"provider": "main", "require": {"roles": ["admin"]}},
        },
    }
    me = mesh / "me"
    async with FakeUpstream() as app:
        config = {
            "upstreams": {},
            "inbound": {
                "address": "127.0.0.1:0",
                "app": f"127.0.0.1:{app.port}",
                "tls": {
                    "cert": str(me / "tls.crt"),
                    "key": str(me / "tls.key"),
                    "ca": str(me / "ca.crt"),
                },
                "allow": [WEB],
                "routes": [
                    {"name": "health", "match": {"path_prefix": "/healthz"}, "allow": [WEB]},
                    {"name": "admin", "match": {"path_prefix": "/admin"}, "allow": [WEB]},
                ],
            },
            "plugins": {"jwt": section},
        }
        peer = ssl.create_default_context(cafile=str(me / "ca.crt"))
        peer.check_hostname = False
        peer.load_cert_chain(str(mesh / "web" / "tls.crt"), str(mesh / "web" / "tls.key"))
        async with running_sidecar(config, plugins=[sidecar_jwt]) as s:
            base = f"https://127.0.0.1:{s.inbound_port}"
            async with httpx.AsyncClient(base_url=base, verify=peer, timeout=10) as client:
                viewer = bearer(sign(keys.rsa, "RS256", claims(roles=["viewer"])))
                health = await client.get("/healthz", headers={"x-user": "root"})
                anonymous = await client.get("/orders")
                orders = await client.get("/orders", headers=viewer)
                admin = await client.get("/admin/users", headers=viewer)
    assert (health.status_code, anonymous.status_code, orders.status_code) == (200, 401, 200)
    assert (admin.status_code, admin.headers["x-sidecar-error"]) == (403, "jwt_insufficient_scope")
    assert 'error="insufficient_scope"' in admin.headers["www-authenticate"]
    assert [r.path_qs for r in app.requests] == ["/healthz", "/orders"]
    assert app.requests[1].headers["x-user"] == "user-1"
    assert "x-user" not in app.requests[0].headers  # unchecked, yet a forged copy is removed


async def test_a_jwks_over_https_from_a_private_ca(
    tls_jwks_server: JwksServer, issuer_pki: Path, keys: Keys, fake_upstream: FakeUpstream
) -> None:
    """With jwks.ca the keys are fetched over HTTPS from an issuer with a private CA; without
    it the certificate is not trusted, no keys are fetched and calls get 503."""
    tls_jwks_server.serve(keys.jwks())
    token = bearer(sign(keys.rsa, "RS256", claims()))
    answers = []
    for ca in (str(issuer_pki / "ca" / "ca.crt"), None):
        over = {"ca": ca} if ca else {}
        config = {
            "upstreams": {"shop": {"url": fake_upstream.url}},
            "plugins": {"jwt": jwt_section(tls_jwks_server, **over)},
        }
        async with running_sidecar(config, plugins=[sidecar_jwt]) as s:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as client:
                answers.append((await client.get("/shop/", headers=token)).status_code)
    assert answers == [200, 503]
    assert tls_jwks_server.hits == 1  # the untrusted handshake never reached the handler


def check(tmp_path: Path, section: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sidecar.yaml"
    config = {"upstreams": {"shop": {"url": "http://127.0.0.1:9"}}, "plugins": {"jwt": section}}
    path.write_text(json.dumps(config))  # a JSON document is YAML too
    return subprocess.run(  # noqa: S603 - the sidecar installed beside this Python
        [SIDECAR, "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )


def test_sidecar_check_names_bad_options_and_never_a_secret(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    """`sidecar check` refuses alg none, a misspelt option and an inline secret with the file
    and key path (exit 2), and does not repeat the secret."""
    section = jwt_section(jwks_server)
    section["providers"]["main"]["algorithms"] = ["none"]
    section["providers"]["main"]["leway"] = 5
    section["providers"]["hs"] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "algorithms": ["HS256"],
        "keys": [{"alg": "HS256", "key": "hunter2-hunter2-hunter2-hunter2!"}],
    }
    done = check(tmp_path, section)
    path = tmp_path / "sidecar.yaml"
    assert done.returncode == 2, done.stderr
    assert f"{path}: plugins.jwt.providers.main.algorithms" in done.stderr
    assert f"{path}: plugins.jwt.providers.main.leway:" in done.stderr
    assert f"{path}: plugins.jwt.providers.hs.keys[0].key: a secret is given by" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
