"""The docs' walkthroughs, run as a new user copies them, give the outputs the docs show.

Each test reads its walkthrough's blocks from the Markdown itself (anchored
``<!-- walkthrough: NAME -->``, see ``doc_blocks``), writes the files they show, runs the
commands they show (``sidecar certs``, ``sidecar check``, ``sidecar run``, ``curl``...) and
compares what they print with what the doc prints, so editing a doc is what changes the test.
What a test changes, and says where it does:

- ports: every doc port gets a free one, in files, commands and outputs alike (``doc_session``);
- made-up hosts (``payments.internal``, ``maps.example.com``, an IdP...) become fake upstreams on
  127.0.0.1, and ``/etc/sidecar/...``, ``/var/run/secrets/...`` files made-up files of the test
  (``DocSession.stand_in``: outputs are compared with the doc's names back in place);
- what varies from run to run is normalised (``doc_blocks.VARYING``: dates, fingerprints,
  ``ls -l`` sizes, user-agent...).

Not run: grpc.md's ``grpcurl`` examples (no grpcurl here) and fragments that show one key or one
error line without the file around it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest
from aiohttp import web
from multidict import CIMultiDict

from sidecar.testing import FakeUpstream

from .doc_blocks import console_steps, section, walkthrough
from .doc_session import VENV_BIN, DocSession, Normaliser, PortMap, free_port, serving, vary
from .mtls_pki import Pki, server_context

DOC_PORTS = [8080, 15000, 15001, 15002, 15006, 16000, 16001, 16002]
EMBEDDED_DEFAULT = (files("sidecar") / "default.yaml").read_text()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[DocSession]:
    s = DocSession(tmp_path / "work", PortMap(DOC_PORTS))
    s.command_rewrites.append((r"(?<![\w/])\.venv/bin/", f"{VENV_BIN}/"))
    try:
        yield s
    finally:
        s.close()


async def _empty(request: web.Request) -> web.Response:
    return web.Response(body=b"")  # the docs show no output for these calls: none comes back


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _token(request: web.Request) -> web.Response:
    return web.json_response({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})


def _headers(up: FakeUpstream) -> CIMultiDict[str]:
    return CIMultiDict(up.requests[-1].raw_headers)


# --- README.md and operations.md -------------------------------------------------------------


def test_readme_first_call(session: DocSession) -> None:
    """README "First call": the embedded default (what ./scripts/run starts) answers as shown."""
    session.write_config("sidecar.yaml", EMBEDDED_DEFAULT)
    session.background("sidecar run -c sidecar.yaml")
    session.run_blocks(walkthrough("README.md", "readme-first-call"))


def test_readme_own_upstreams(session: DocSession, tmp_path: Path) -> None:
    """README "Your own upstreams": the file checks and runs, and the three ways named reach it."""
    # payments.internal: a TLS fake signed by a test CA standing in for /etc/sidecar/ca.crt;
    # inventory and the collector: closed local ports (neither is called)
    pki = Pki(tmp_path / "pki")
    payments = pki.workload("payments", "spiffe://cluster.local/ns/pay/sa/payments", ip=True)
    session.env["PAYMENTS_API_KEY"] = "k-readme"
    config, commands = walkthrough("README.md", "readme-own-upstreams")
    tls = server_context(payments, require_client_cert=False)
    with serving(FakeUpstream(_empty, ssl_context=tls)) as fake:
        session.stand_in("https://payments.internal:8443", fake.url)
        session.stand_in("/etc/sidecar/ca.crt", pki.ca)
        session.stand_in("inventory.internal:50051", f"127.0.0.1:{free_port()}")
        session.stand_in("http://otel-collector:4317", f"http://127.0.0.1:{free_port()}")
        session.write_config("sidecar.yaml", config.text)
        session.run_blocks([commands])  # check (exit 0), run, plugins
        prose = section("README.md", "Your own upstreams")
        urls = re.findall(r"`(http://127\.0\.0\.1:15001/[^`]+)`", prose)
        target = re.search(r"`https://payments\.internal:8443(/[^`]*)`", prose)
        assert len(urls) == 2 and target and "`Host: payments`" in prose, prose
        for url in urls:
            session.shell(f"curl -s {url}")
        session.shell(f"curl -s -H 'Host: payments' http://127.0.0.1:15001{target[1]}")
        got = [(r.path_qs, r.headers.get("x-api-key")) for r in fake.requests]
        assert got == [(target[1], "k-readme")] * 3


def test_operations_probes(session: DocSession) -> None:
    """operations.md: /healthz and /readyz answer as shown, /readyz draining after SIGTERM."""
    # the step marked "after SIGTERM" runs once the sidecar logged that it drains
    session.write_config("sidecar.yaml", EMBEDDED_DEFAULT)
    sidecar = session.background("sidecar run -c sidecar.yaml")
    for block in walkthrough("docs/operations.md", "operations-probes"):
        for step in console_steps(block):
            if step.comment == "after SIGTERM":
                sidecar.signal(signal.SIGTERM)
                sidecar.wait_for_log("draining")
            session.run_step(step)


# --- mtls.md ----------------------------------------------------------------------------------


def test_mtls_complete_example(session: DocSession) -> None:
    """mtls.md "A complete example": certificates, two sidecars, calls and refusals as shown."""
    for block in walkthrough("docs/mtls.md", "mtls-complete"):
        if block.lang == "json":  # payments' sidecar log: the fields shown, client ports aside
            logged = [_portless(line) for line in session.job("payments.yaml").log()]
            for line in block.text.splitlines():
                shown = _portless(json.loads(line))
                assert any(got | shown == got for got in logged), f"not logged: {line}\n{logged}"
        elif "with spiffe_id:" in block.text:  # the same call once web.yaml expects another ID
            (step,) = console_steps(block)
            expected = re.search(r"with spiffe_id: (\S+)", step.comment or "")
            assert expected, f"{block.where}: which spiffe_id? {step.command}"
            web_sidecar = session.job("web.yaml")
            seen = len(web_sidecar.log())
            config = session.dir / "web.yaml"
            config.write_text(
                re.sub(r"spiffe_id: \S+", f"spiffe_id: {expected[1]}", config.read_text())
            )
            web_sidecar.wait_for_log("config reloaded", after=seen)
            session.run_step(step)
        else:
            session.run_blocks([block])


def _portless(line: dict[str, object]) -> dict[str, object]:
    return {
        k: re.sub(r":\d+$", ":<port>", v) if isinstance(v, str) else v
        for k, v in line.items()
        if k != "ts"
    }


# --- credentials.md ---------------------------------------------------------------------------


def _check_received(note: str, up: FakeUpstream) -> None:
    """A "the upstream receives: METHOD TARGET [with NAME: VALUE]" note holds for ``up``."""
    found = re.fullmatch(r"the upstream receives: (\S+) (\S+)(?: with ([\w-]+): (.+))?", note)
    assert found, f"a note no rule checks: {note!r}"
    last = up.requests[-1]
    assert (last.method, last.path_qs) == (found[1], found[2]), note
    if found[3]:
        assert _headers(up).getall(found[3]) == [found[4]], note


def test_credentials_api_key(session: DocSession, tmp_path: Path) -> None:
    """credentials.md api_key: the key goes in the header, or in the query, as the notes say."""
    # maps.example.com, api.weather.example: fake upstreams; the key: a file of the test
    key = "w&k 1"
    (tmp_path / "weather-key").write_text(f"{key}\n")
    config, console = walkthrough("docs/credentials.md", "credentials-api-key")
    with serving(FakeUpstream(_empty)) as maps, serving(FakeUpstream(_empty)) as weather:
        session.stand_in("https://maps.example.com", maps.url)
        session.stand_in("https://api.weather.example", weather.url)
        session.stand_in("/var/run/secrets/weather/key", str(tmp_path / "weather-key"))
        session.write_config("sidecar.yaml", config.text)
        for step in console_steps(console):
            session.run_step(step)
            for note in step.notes:
                up = {"maps": maps, "weather": weather}[re.findall(r":\d+/(\w+)/", step.command)[0]]
                _check_received(note.replace("<the key, percent-encoded>", quote(key, safe="")), up)


def test_credentials_bearer(session: DocSession, tmp_path: Path) -> None:
    """credentials.md bearer: the call carries the token file's content as its comment shows."""
    # api.github.com: a fake upstream; the token: a file; the doc's run step is implied, added
    (tmp_path / "token").write_text("gh-token-1\n")
    config, console = walkthrough("docs/credentials.md", "credentials-bearer")
    with serving(FakeUpstream(_empty)) as github:
        session.stand_in("https://api.github.com", github.url)
        session.stand_in("/var/run/secrets/github/token", str(tmp_path / "token"))
        session.write_config("sidecar.yaml", config.text)
        session.background("sidecar run -c sidecar.yaml")
        (step,) = console_steps(console)
        session.run_step(step)
        shown = (step.comment or "").replace("<the file's content>", "gh-token-1")
        name, _, value = shown.partition(": ")
        assert _headers(github).getall(name) == [value], shown


def test_credentials_oauth2(session: DocSession, tmp_path: Path) -> None:
    """credentials.md oauth2: one token fetch, the token sent, /upstreams as printed."""
    # the IdP: a TLS fake signed by a test CA standing in for idp-ca.crt; payments.internal: a
    # plain-HTTP fake; the client secret: a file of the test
    pki = Pki(tmp_path / "pki")
    idp_tls = server_context(
        pki.workload("idp", "spiffe://cluster.local/ns/idp/sa/idp", ip=True),
        require_client_cert=False,
    )
    (tmp_path / "client-secret").write_text("cs-1\n")
    config, console = walkthrough("docs/credentials.md", "credentials-oauth2")
    with (
        serving(FakeUpstream(_token, ssl_context=idp_tls)) as idp,
        serving(FakeUpstream(_empty)) as payments,
    ):
        session.stand_in("https://payments.internal:8443", payments.url)
        session.stand_in("https://idp.internal", idp.url)
        session.stand_in("/etc/sidecar/idp-ca.crt", pki.ca)
        session.stand_in("/var/run/secrets/idp/client-secret", str(tmp_path / "client-secret"))
        session.write_config("sidecar.yaml", config.text)
        for step in console_steps(console):
            session.run_step(step)
            if step.notes:  # "posted grant_type=...&scope=... once", "receives ... Bearer <token>"
                grant = re.search(r"posted grant_type=(\w+)&scope=\S+ .*once", " ".join(step.notes))
                assert grant, step.notes
                assert [r.method for r in idp.requests] == ["POST"]
                form = parse_qs(idp.requests[0].body.decode())
                scope = re.search(r'sent as scope="([^"]+)"', config.text)
                assert scope, "the example no longer says how scopes are sent"
                assert (form["grant_type"], form["scope"]) == ([grant[1]], [scope[1]]), form
                assert _headers(payments).getall("authorization") == ["Bearer at-1"]


def test_credentials_hmac_receiver(session: DocSession) -> None:
    """credentials.md hmac: the doc's receiver accepts what the sidecar signed and sent."""
    # hooks.partner.example: a fake upstream
    config, receiver = walkthrough("docs/credentials.md", "credentials-hmac")
    example = r"\(`(/[^`]+)` for a call to `(/[^`]+)` above\)"
    target = re.search(example, section("docs/credentials.md", "hmac"))
    assert target, "the string-to-sign table names no example target"
    session.env["PARTNER_HOOK_SECRET"] = "hook-secret"
    with serving(FakeUpstream(_ok)) as partner:
        session.stand_in("https://hooks.partner.example", partner.url)
        session.write_config("sidecar.yaml", config.text)
        session.background("sidecar run -c sidecar.yaml")
        call = f"curl -s --data '{{\"order\": 7}}' 'http://127.0.0.1:15001{target[2]}'"
        assert session.shell(call) == (0, "ok")
        (got,) = partner.requests
        assert got.path_qs == target[1]
        scope: dict[str, object] = {}
        exec(receiver.text, scope)  # the doc's own receiver
        verify = scope["verify"]
        assert callable(verify)
        assert verify(b"hook-secret", "POST", got.path_qs, got.body, _headers(partner))


def test_credentials_verify_hmac(session: DocSession, tmp_path: Path) -> None:
    """credentials.md verify_hmac: the shell sender's signed call passes (200), unsigned 401."""
    # the app: a fake on 127.0.0.1
    (tmp_path / "webhook-secret").write_text("wh-secret\n")
    session.env["WEBHOOK_SECRET"] = "wh-secret"
    config, sender = walkthrough("docs/credentials.md", "credentials-verify-hmac")
    with serving(FakeUpstream(_ok)) as app:
        session.stand_in("http://127.0.0.1:8080", app.url)
        session.stand_in(
            "/var/run/secrets/billing/webhook-secret", str(tmp_path / "webhook-secret")
        )
        session.write_config("sidecar.yaml", config.text)
        session.background("sidecar run -c sidecar.yaml")
        code, out = session.shell(sender.text)
        assert code == 0, out
        shown = re.findall(r"#\s*(\d{3})\b", sender.text)
        assert re.findall(r"HTTP/1.1 (\d{3})", out) == shown == ["200", "401"], out
        assert [(r.path_qs, r.body) for r in app.requests] == [
            ("/hooks/billing", b'{"event":"invoice.paid"}')
        ]


# --- configuration.md, resilience.md, plugins.md ----------------------------------------------


@pytest.fixture(scope="module")
def hello_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """plugins.md's first plugin, from the doc's own files, pip-installed into a directory of
    its own (``--target``, offline) that only this module's commands see (``PYTHONPATH``)."""
    blocks = walkthrough("docs/plugins.md", "plugins-first-plugin")
    step = next(s for b in blocks if b.lang == "console" for s in console_steps(b))
    source = re.fullmatch(r"pip install (\S+)", step.command)
    assert source, f"the walkthrough no longer starts with a pip install: {step.command}"
    workdir = tmp_path_factory.mktemp("hello-plugin")
    for block in blocks:
        if block.lang in ("toml", "python"):
            assert block.file_name, f"{block.where}: which file is this?"
            path = workdir / source[1] / block.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
    site = workdir / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    cmd += ["--no-build-isolation", "--target", str(site), str(workdir / source[1])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {"PYTHONPATH": str(site)}


#: a Standard Webhooks secret: whsec_ and the base64 of a 24-to-64-byte key
WHSEC = "whsec_czNjcmV0LXdlYmhvb2stc2lnbmluZy1rZXktMzJiISE="


def test_configuration_complete_example_checks(
    session: DocSession, tmp_path: Path, hello_plugin: dict[str, str]
) -> None:
    """configuration.md: check passes the complete example and refuses its typos, as shown."""
    # its secrets and files: files of the test; its certificates: a test CA's
    example, valid, invalid = walkthrough("docs/configuration.md", "configuration-check")
    session.env.update(hello_plugin)
    workload = Pki(tmp_path / "pki").workload("pay", "spiffe://cluster.local/ns/pay/sa/payments")
    for name, path in (
        ("tls.crt", workload.cert),
        ("tls.key", workload.key),
        ("ca.crt", workload.ca),
    ):
        session.stand_in(f"/etc/sidecar/{name}", path)
    for secret in set(re.findall(r"\{file: (/var/run/secrets/[^}\s]+)\}", example.text)):
        session.stand_in(secret, str(session.write(f"secrets/{Path(secret).name}", "s3cret\n")))
    for variable in re.findall(r"\{env: (\w+)\}", example.text):
        # a Standard Webhooks secret (verify_hmac's standard-webhooks scheme) must look like one
        session.env[variable] = WHSEC if "WHSEC" in variable else "s3cret"
    session.write_config("sidecar.yaml", example.text)
    session.run_blocks([valid])
    typos = [  # where the four problems the doc shows come from
        ("  address: 127.0.0.1:15001", "  adress: 127.0.0.1:15001"),
        ("    timeout: 15s                    # the whole call, every", "    timeout: fast #"),
        ("    upstream: payments\n", "    upstream: paymnts\n"),
        ("    greeting: bonjour", "    greting: bonjour"),
    ]
    text = example.text
    for right, wrong in typos:
        assert text.count(right) == 1, f"the complete example changed: {right!r}"
        text = text.replace(right, wrong)
    session.write_config("sidecar.yaml", text, runs=False)
    session.run_blocks([invalid])


def test_resilience_rate_limits_check(session: DocSession) -> None:
    """resilience.md: check prints each rate limit of the example with its burst, as shown."""
    # nothing is called: redis and payments.internal stay made up
    config, console = walkthrough("docs/resilience.md", "resilience-rate-limits")
    session.env["REDIS_PASSWORD"] = "s3cret"
    session.write_config("sidecar.yaml", config.text)
    session.run_blocks([console])


def filters_shown_only(doc_output: str) -> Normaliser:
    """``sidecar plugins`` ends with every installed plugin's filters; this repository's other
    plugins (``scripts/setup --test`` installs them all) are not in the doc's environment, so the
    filters the doc does not name are left out of that line before comparing."""
    line = re.compile(r"^filters, outermost first: (.*)$", re.M)
    shown = line.search(doc_output)
    if shown is None:
        return vary
    names = set(shown[1].split(", "))

    def normalise(text: str) -> str:
        def keep(m: re.Match[str]) -> str:
            kept = [n for n in m[1].split(", ") if n in names]
            return f"filters, outermost first: {', '.join(kept)}"

        return vary(line.sub(keep, text))

    return normalise


def test_plugins_first_plugin(session: DocSession, hello_plugin: dict[str, str]) -> None:
    """plugins.md "A first plugin": listed as shown, and responses carry the header named."""
    # the shop upstream: a fake on 127.0.0.1
    session.env.update(hello_plugin)
    with serving(FakeUpstream(_ok)) as shop:
        session.stand_in("http://127.0.0.1:8080", shop.url)
        for block in walkthrough("docs/plugins.md", "plugins-first-plugin"):
            if block.lang == "console":
                for step in console_steps(block):
                    if not step.command.startswith("pip install"):  # the fixture installed it
                        session.run_step(step, filters_shown_only(step.output))
            elif block.lang == "yaml":
                session.run_blocks([block])
        session.background("sidecar run -c sidecar.yaml")
        prose = section("docs/plugins.md", "A first plugin")
        header = re.search(r"carries `([\w-]+): ([^`]+)`", prose)
        assert header, "the doc names no header the plugin adds"
        code, out = session.shell("curl -si http://127.0.0.1:15001/shop/")
        assert f"\n{header[1]}: {header[2]}\r\n" in out, out
        assert len(shop.requests) == 1


def test_plugins_testing_example(session: DocSession, hello_plugin: dict[str, str]) -> None:
    """plugins.md "Testing a plugin": the doc's tests, in a project set up as it says, pass."""
    session.env.update(hello_plugin)
    config, tests = walkthrough("docs/plugins.md", "plugins-testing")
    assert config.file_name == "pyproject.toml"
    session.write(config.file_name, config.text)
    session.write("test_hello.py", tests.text)
    code, out = session.shell("python -m pytest -q -p no:cacheprovider test_hello.py", timeout=120)
    assert code == 0 and "2 passed" in out, out
