"""A bad config file is refused with every problem as `file: key.path: reason`, in plain English."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from sidecar.config import PluginSchemas, load_config, parse_config
from sidecar.errors import ConfigError

ENV = {"HOME": "/root", "EMPTY": ""}


class DemoSection(BaseModel):
    """A plugin's declared section, as a third party would write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: int = 3
    mode: str = "fast"


class GrpcOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    services: list[str]


SCHEMAS = PluginSchemas({"demo": DemoSection}, {"http": None, "echo": None, "grpc": GrpcOptions})
UP = 'url: "http://pay:8080"'


def problems(text: str, schemas: PluginSchemas | None = SCHEMAS) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sidecar.yaml", ENV, schemas=schemas)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


# (id, YAML, the exact problem lines)
CASES: list[tuple[str, str, list[str]]] = [
    # --- a duration that is not one
    (
        "duration",
        "upstreams:\n  payments:\n    url: https://payments.internal:8443\n    timeout: fast\n",
        ['sidecar.yaml: upstreams.payments.timeout: expected a duration like "2s", got "fast"'],
    ),
    # --- unknown keys, at each level
    (
        "unknown-top",
        "upstream: {}\n",
        ["sidecar.yaml: upstream: unknown key (did you mean 'upstreams'?)"],
    ),
    (
        "unknown-listener",
        "http: {adress: 127.0.0.1:15001}\n",
        ["sidecar.yaml: http.adress: unknown key (did you mean 'address'?)"],
    ),
    (
        "unknown-upstream",
        f"upstreams: {{p: {{{UP}, timout: 2s}}}}\n",
        ["sidecar.yaml: upstreams.p.timout: unknown key (did you mean 'timeout'?)"],
    ),
    (
        "unknown-pool",
        f"upstreams: {{p: {{{UP}, pool: {{max_conns: 3}}}}}}\n",
        ["sidecar.yaml: upstreams.p.pool.max_conns: unknown key (did you mean 'max_connections'?)"],
    ),
    (
        "unknown-tls-lists-keys",
        "upstreams: {p: {url: 'https://p', tls: {cafile: /ca}}}\n",
        [
            "sidecar.yaml: upstreams.p.tls.cafile: unknown key "
            "(this section takes: ca, cert, key, server_name, spiffe_id, verify)"
        ],
    ),
    (
        "unknown-route-match",
        f"upstreams: {{p: {{{UP}}}}}\nroutes: [{{match: {{prefix: /a}}, upstream: p}}]\n",
        ["sidecar.yaml: routes[0].match.prefix: unknown key (did you mean 'path_prefix'?)"],
    ),
    (
        "unknown-access-log",
        "telemetry: {access_log: {sample: 0.5}}\n",
        ["sidecar.yaml: telemetry.access_log.sample: unknown key (did you mean 'sample_ratio'?)"],
    ),
    (
        "unknown-secret-key",
        f"upstreams: {{p: {{{UP}, request_headers: {{authorization: {{path: /s}}}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.authorization.path: unknown key "
            "(this section takes: env, file)"
        ],
    ),
    (
        "yaml-1.1-on-is-a-key-not-true",
        f"upstreams: {{p: {{{UP}, on: [503]}}}}\n",
        [
            "sidecar.yaml: upstreams.p.on: unknown key (this section takes: adapter, auth, "
            "cassette, circuit_breaker, concurrency, connect_timeout, fault, global_rate_limit, "
            "host, options, pool, rate_limit, request_headers, response_header_timeout, retry, "
            "services, timeout, tls, url, verify_hmac)"
        ],
    ),
    # --- wrong types
    (
        "int",
        "http: {max_headers: lots}\n",
        ['sidecar.yaml: http.max_headers: expected a whole number, got "lots"'],
    ),
    (
        "int-from-float",
        f"upstreams: {{p: {{{UP}, pool: {{max_connections: 1.5}}}}}}\n",
        ["sidecar.yaml: upstreams.p.pool.max_connections: expected a whole number, got 1.5"],
    ),
    (
        "int-bounds",
        "http: {max_headers: 0}\n",
        ["sidecar.yaml: http.max_headers: must be at least 1, got 0"],
    ),
    (
        "bool",
        "telemetry: {access_log: {enabled: maybe}}\n",
        ['sidecar.yaml: telemetry.access_log.enabled: expected true or false, got "maybe"'],
    ),
    (
        "float-bounds",
        "telemetry: {access_log: {sample_ratio: 2}}\n",
        ["sidecar.yaml: telemetry.access_log.sample_ratio: must be at most 1.0, got 2"],
    ),
    (
        "choice",
        "telemetry: {log_level: verbose}\n",
        [
            'sidecar.yaml: telemetry.log_level: expected "debug", "info", "warning" or "error", '
            'got "verbose"'
        ],
    ),
    (
        "section-not-mapping",
        "admin: 5\n",
        ["sidecar.yaml: admin: expected a mapping (key: value), got 5"],
    ),
    (
        "upstreams-a-list",
        "upstreams: [payments]\n",
        ["sidecar.yaml: upstreams: expected a mapping (key: value), got a list"],
    ),
    (
        "routes-a-mapping",
        "routes: {a: 1}\n",
        ["sidecar.yaml: routes: expected a list, got a mapping"],
    ),
    (
        "string",
        "upstreams: {p: {url: 5}}\n",
        ["sidecar.yaml: upstreams.p.url: expected a string, got 5"],
    ),
    (
        "upstream-null",
        "upstreams: {p: null}\n",
        ["sidecar.yaml: upstreams.p: expected a mapping (key: value), got null"],
    ),
    (
        "list-of-strings",
        "plugins: {disabled: [1]}\n",
        ["sidecar.yaml: plugins.disabled[0]: expected a string, got 1"],
    ),
    (
        "header-value-type",
        f"upstreams: {{p: {{{UP}, request_headers: {{x-a: 5}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.x-a: expected a string or a secret "
            "reference ({env: NAME} or {file: PATH}), got 5"
        ],
    ),
    # --- durations, sizes, addresses
    (
        "duration-negative",
        f"upstreams: {{p: {{{UP}, connect_timeout: -1s}}}}\n",
        ['sidecar.yaml: upstreams.p.connect_timeout: expected a duration like "2s", got "-1s"'],
    ),
    (
        "duration-words",
        "shutdown: {drain_timeout: 2 seconds}\n",
        ['sidecar.yaml: shutdown.drain_timeout: expected a duration like "2s", got "2 seconds"'],
    ),
    (
        "duration-zero-timeout",
        f"upstreams: {{p: {{{UP}, timeout: 0s}}}}\n",
        ["sidecar.yaml: upstreams.p.timeout: must be longer than 0s"],
    ),
    (
        "duration-list",
        f"upstreams: {{p: {{{UP}, timeout: [1]}}}}\n",
        ['sidecar.yaml: upstreams.p.timeout: expected a duration like "2s", got a list'],
    ),
    (
        "size",
        "http: {max_header_bytes: 60 kilobytes}\n",
        [
            'sidecar.yaml: http.max_header_bytes: expected a size like "64KiB" or "10MB", '
            'got "60 kilobytes"'
        ],
    ),
    (
        "size-optional",
        "http: {max_request_body: lots}\n",
        ['sidecar.yaml: http.max_request_body: expected a size like "64KiB" or "10MB", got "lots"'],
    ),
    (
        "address-no-port",
        "http: {address: localhost}\n",
        ['sidecar.yaml: http.address: expected an address like "127.0.0.1:15001", got "localhost"'],
    ),
    (
        "address-port-range",
        "admin: {address: '127.0.0.1:99999'}\n",
        [
            'sidecar.yaml: admin.address: expected an address like "127.0.0.1:15001", '
            'got "127.0.0.1:99999"'
        ],
    ),
    (
        "address-ipv6-needs-brackets",
        "http: {address: '::1:15001'}\n",
        ['sidecar.yaml: http.address: expected an address like "127.0.0.1:15001", got "::1:15001"'],
    ),
    (
        "address-number",
        "http: {address: 15001}\n",
        ['sidecar.yaml: http.address: expected an address like "127.0.0.1:15001", got 15001'],
    ),
    (
        "egress-not-on-the-network",
        "http: {address: '0.0.0.0:15001'}\n",
        [
            "sidecar.yaml: http.address: must be a loopback address (127.0.0.1, [::1] or "
            'localhost): only the app beside the sidecar may call it, got "0.0.0.0:15001"'
        ],
    ),
    # --- URLs
    (
        "url-no-scheme",
        "upstreams: {p: {url: 'payments.internal:8443'}}\n",
        [
            'sidecar.yaml: upstreams.p.url: expected a URL like "http://host:port", '
            'got "payments.internal:8443"'
        ],
    ),
    (
        "url-bad-port",
        "upstreams: {p: {url: 'http://pay:abc'}}\n",
        [
            'sidecar.yaml: upstreams.p.url: expected a URL like "http://host:port", '
            'got "http://pay:abc"'
        ],
    ),
    (
        "url-query",
        "upstreams: {p: {url: 'http://pay/?a=1'}}\n",
        [
            "sidecar.yaml: upstreams.p.url: an upstream URL has no query or fragment, "
            'got "http://pay/?a=1"'
        ],
    ),
    (
        "url-scheme-for-http-adapter",
        "upstreams: {p: {url: 'ftp://pay'}}\n",
        [
            "sidecar.yaml: upstreams.p.url: the http adapter speaks http:// or https://, "
            'got "ftp://pay"'
        ],
    ),
    (
        "url-missing-for-http-adapter",
        "upstreams: {p: {timeout: 2s}}\n",
        ["sidecar.yaml: upstreams.p.url: required key is missing (the http adapter)"],
    ),
    (
        "tls-on-plain-http",
        "upstreams: {p: {url: 'http://pay', tls: {ca: /ca.pem}}}\n",
        ["sidecar.yaml: upstreams.p.tls: tls is set but the URL is http://"],
    ),
    (
        "tls-cert-without-key",
        "upstreams: {p: {url: 'https://pay', tls: {cert: /c.pem}}}\n",
        ["sidecar.yaml: upstreams.p.tls: cert and key must be given together"],
    ),
    # --- names and headers
    (
        "upstream-name",
        "upstreams: {Payments: {url: 'http://pay'}}\n",
        [
            "sidecar.yaml: upstreams.Payments: an upstream name is lowercase letters, digits, "
            "'.', '_' or '-' (it is matched against paths and Host headers), got \"Payments\""
        ],
    ),
    (
        "header-name",
        f"upstreams: {{p: {{{UP}, request_headers: {{'bad name': x}}}}}}\n",
        ['sidecar.yaml: upstreams.p.request_headers.bad name: not a header name: "bad name"'],
    ),
    (
        "header-reserved",
        f"upstreams: {{p: {{{UP}, request_headers: {{Content-Length: '5'}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.Content-Length: the sidecar sets "
            "content-length itself; it cannot be configured"
        ],
    ),
    (
        "header-twice",
        f"upstreams: {{p: {{{UP}, request_headers: {{X-Key: a, x-key: b}}}}}}\n",
        [
            'sidecar.yaml: upstreams.p.request_headers: "X-Key" and "x-key" are the same header '
            "(names ignore case)"
        ],
    ),
    (
        "header-value-line-break",
        f'upstreams: {{p: {{{UP}, request_headers: {{x-a: "a\\r\\nx-b: c"}}}}}}\n',
        [
            "sidecar.yaml: upstreams.p.request_headers.x-a: contains a control or non-latin-1 "
            "character (CR, LF and NUL are never allowed)"
        ],
    ),
    (
        "secret-both",
        f"upstreams: {{p: {{{UP}, request_headers: {{x-a: {{env: A, file: /a}}}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.x-a: a secret reference is {env: NAME} "
            "or {file: PATH}, exactly one"
        ],
    ),
    (
        "secret-env-name",
        f"upstreams: {{p: {{{UP}, request_headers: {{x-a: {{env: 1A}}}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.x-a.env: expected an environment variable "
            'name, got "1A"'
        ],
    ),
    (
        "secret-env-missing",
        f"upstreams: {{p: {{{UP}, request_headers: {{x-a: {{env: SIDECAR_TEST_NOPE}}}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.x-a: the secret {env: SIDECAR_TEST_NOPE} "
            "is missing: the variable is not set"
        ],
    ),
    (
        "secret-file-missing",
        f"upstreams: {{p: {{{UP}, request_headers: {{x-a: {{file: /nonexistent/s}}}}}}}}\n",
        [
            "sidecar.yaml: upstreams.p.request_headers.x-a: the secret {file: /nonexistent/s} "
            "cannot be read: No such file or directory"
        ],
    ),
    # --- routes: list index paths and cross-checks
    (
        "route-unknown-upstream",
        f"upstreams: {{payments: {{{UP}}}}}\nroutes: [{{match: {{path_prefix: /pay}}, "
        "upstream: paymnts}]\n",
        [
            'sidecar.yaml: routes[0].upstream: no upstream named "paymnts" '
            '(did you mean "payments"?)'
        ],
    ),
    (
        "route-unknown-upstream-lists-them",
        f"upstreams: {{a: {{{UP}}}, b: {{{UP}}}}}\n"
        "routes: [{match: {host: x}, upstream: zzz}]\n",
        ['sidecar.yaml: routes[0].upstream: no upstream named "zzz" (upstreams: a, b)'],
    ),
    (
        "route-missing-keys",
        f"upstreams: {{p: {{{UP}}}}}\nroutes: [{{match: {{host: a}}, upstream: p}}, {{}}]\n",
        [
            "sidecar.yaml: routes[1].match: required key is missing",
            "sidecar.yaml: routes[1].upstream: required key is missing",
        ],
    ),
    (
        "route-matches-nothing",
        f"upstreams: {{p: {{{UP}}}}}\nroutes: [{{match: {{}}, upstream: p}}]\n",
        ["sidecar.yaml: routes[0].match: matches nothing: give path_prefix, host or headers"],
    ),
    (
        "route-prefix",
        f"upstreams: {{p: {{{UP}}}}}\nroutes: [{{match: {{path_prefix: pay}}, upstream: p}}]\n",
        ['sidecar.yaml: routes[0].match.path_prefix: a path prefix starts with "/", got "pay"'],
    ),
    (
        "route-rewrite-without-prefix",
        f"upstreams: {{p: {{{UP}}}}}\n"
        "routes: [{match: {host: a}, upstream: p, prefix_rewrite: /v2}]\n",
        ["sidecar.yaml: routes[0].prefix_rewrite: rewrites a prefix, but match has no path_prefix"],
    ),
    (
        "route-names-unique",
        f"upstreams: {{p: {{{UP}}}}}\nroutes:\n"
        "  - {name: r, match: {host: a}, upstream: p}\n"
        "  - {name: r, match: {host: b}, upstream: p}\n",
        ['sidecar.yaml: routes[1].name: "r" is also routes[0].name'],
    ),
    # --- plugin sections and adapters, validated by what the plugins declare
    (
        "plugin-section-type",
        "plugins: {demo: {threshold: high}}\n",
        ['sidecar.yaml: plugins.demo.threshold: expected a whole number, got "high"'],
    ),
    (
        "plugin-section-unknown-key",
        "plugins: {demo: {thresold: 2}}\n",
        ["sidecar.yaml: plugins.demo.thresold: unknown key (did you mean 'threshold'?)"],
    ),
    (
        "plugin-section-undeclared",
        "plugins: {nosuch: {a: 1}}\n",
        ["sidecar.yaml: plugins.nosuch: no loaded plugin declares this section (declared: demo)"],
    ),
    (
        "adapter-unknown",
        "upstreams: {inv: {adapter: grcp, url: 'grpc://inv:50051'}}\n",
        ['sidecar.yaml: upstreams.inv.adapter: no adapter named "grcp" (loaded: echo, grpc, http)'],
    ),
    (
        "adapter-options",
        "upstreams: {inv: {adapter: grpc, url: 'grpc://inv', options: {service: [a]}}}\n",
        [
            "sidecar.yaml: upstreams.inv.options.services: required key is missing",
            "sidecar.yaml: upstreams.inv.options.service: unknown key (did you mean 'services'?)",
        ],
    ),
    (
        "adapter-takes-no-options",
        f"upstreams: {{p: {{{UP}, options: {{a: 1}}}}}}\n",
        ["sidecar.yaml: upstreams.p.options: the http adapter takes no options"],
    ),
    # --- the file itself
    (
        "yaml-syntax",
        "upstreams:\n  a: {url: 'http://x'\n",
        [
            "sidecar.yaml: line 3, column 1: not valid YAML: expected ',' or '}', but got "
            "'<stream end>' (while parsing a flow mapping that starts at line 2, column 6)"
        ],
    ),
    (
        "yaml-indentation",
        "upstreams:\n  a:\n    url: http://x\n   timeout: 2s\n",
        [
            "sidecar.yaml: line 4, column 4: not valid YAML: expected <block end>, but found "
            "'<block mapping start>' (while parsing a block mapping that starts at line 2, "
            "column 3)"
        ],
    ),
    (
        "yaml-duplicate-key",
        "upstreams:\n  a: {url: 'http://x'}\nhttp: {}\nupstreams: {}\n",
        [
            'sidecar.yaml: line 4, column 1: the key "upstreams" is written twice in this mapping '
            "(first at line 1)"
        ],
    ),
    (
        "yaml-control-character",
        "upstreams: {p: {host: 'a\x01'}}\n",
        ["sidecar.yaml: line 1, column 25: not valid YAML: the character #x0001 is not allowed"],
    ),
    (
        "top-level-list",
        "- upstreams\n",
        [
            "sidecar.yaml: the top level must be a mapping of sections (admin:, http:, "
            "upstreams:, ...), got a list"
        ],
    ),
    (
        "top-level-scalar",
        "hello\n",
        [
            "sidecar.yaml: the top level must be a mapping of sections (admin:, http:, "
            'upstreams:, ...), got "hello"'
        ],
    ),
    # --- ${ENV}
    (
        "env-missing",
        "upstreams: {p: {url: '${PAYMENTS_URL}'}}\n",
        [
            "sidecar.yaml: upstreams.p.url: the environment variable PAYMENTS_URL is not set "
            "(write ${PAYMENTS_URL:-default} to give a default)"
        ],
    ),
    (
        "env-missing-in-list",
        "plugins: {disabled: [a, '${NOPE}']}\n",
        [
            "sidecar.yaml: plugins.disabled[1]: the environment variable NOPE is not set "
            "(write ${NOPE:-default} to give a default)"
        ],
    ),
    (
        "env-malformed",
        "upstreams: {p: {url: '${PAYMENTS_URL'}}\n",
        [
            "sidecar.yaml: upstreams.p.url: a ${ without a variable: write ${NAME}, "
            "${NAME:-default}, or $${ for a literal ${"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_reported_with_file_key_path_and_plain_reason(
    text: str, expected: list[str]
) -> None:
    """Each mistake a user makes is named where it is, in words they understand."""
    assert problems(text) == expected


def test_no_message_carries_a_pydantic_url_or_type_tag() -> None:
    """Messages are for the config's author, not pydantic's error catalogue."""
    for _, text, _ in CASES:
        for line in problems(text):
            assert "pydantic" not in line
            assert "type=" not in line
            assert "Input should" not in line


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    """One `sidecar check` run lists all mistakes, not one per edit-and-retry cycle."""
    text = """\
admin: {address: "0.0.0.0:15000"}
http: {adress: 127.0.0.1:15001, max_headers: lots}
upstreams:
  payments:
    url: https://payments.internal:8443
    timeout: fast
  inventory:
    adapter: grpc
    url: grpc://inventory:50051
    options: {services: nope}
routes:
  - {match: {path_prefix: /pay}, upstream: paymnts}
plugins:
  demo: {threshold: high}
"""
    got = problems(text)
    wanted_paths = [
        "admin.address",
        "http.max_headers",
        "http.adress",
        "upstreams.payments.timeout",
        "routes[0].upstream",
        "plugins.demo.threshold",
        "upstreams.inventory.options.services",
    ]
    assert [line.split(": ")[1] for line in got] == wanted_paths


def test_a_missing_secret_is_found_in_the_same_pass_as_other_problems() -> None:
    """Secrets are checked in the upstreams that validated even when another part did not."""
    text = (
        "http: {max_headers: lots}\n"
        f"upstreams: {{p: {{{UP}, request_headers: {{x-a: {{env: SIDECAR_TEST_NOPE}}}}}}}}\n"
    )
    got = problems(text)
    assert [line.split(": ")[1] for line in got] == [
        "http.max_headers",
        "upstreams.p.request_headers.x-a",
    ]


def test_plugin_problems_are_reported_with_core_problems() -> None:
    """A typo in a plugin section shows up even when the core sections also have mistakes."""
    got = problems("http: {max_headers: 0}\nplugins: {demo: {mode: [1]}}\n")
    assert got == [
        "sidecar.yaml: http.max_headers: must be at least 1, got 0",
        "sidecar.yaml: plugins.demo.mode: expected a string, got a list",
    ]


def test_unreadable_file_is_a_problem_with_its_name(tmp_path: Path) -> None:
    """A wrong -c path says which path and why, not a traceback."""
    for path, reason in [
        (tmp_path / "missing.yaml", "cannot read the file: No such file or directory"),
        (tmp_path, "cannot read the file: Is a directory"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path}: {reason}"


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    """A binary or mis-encoded file is refused with the reason."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"upstreams: {}\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not UTF-8 text (line 2 has a byte that cannot be decoded)"


def test_without_plugin_schemas_plugin_sections_are_not_judged() -> None:
    """Code that validates the core alone (no plugin host) does not refuse plugin sections."""
    config = parse_config("plugins: {demo: {threshold: high}}\n", "sidecar.yaml", ENV)
    assert config.plugins.section("demo") == {"threshold": "high"}
