"""A gRPC upstream's keepalive options are held to gRPC's own limits when the config is read:
each refusal is one `file: key.path: reason` line, as every config problem is (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import PluginSchemas, parse_config
from sidecar.errors import ConfigError
from sidecar.grpc.channels import GrpcUpstreamOptions

SCHEMAS = PluginSchemas({}, {"http": None, "grpc": GrpcUpstreamOptions})
KEY = "sidecar.yaml: upstreams.inv.options"


def config_text(options: str) -> str:
    return (
        "upstreams:\n"
        "  inv:\n"
        "    adapter: grpc\n"
        "    url: grpc://inventory:50051\n"
        f"    options: {{{options}}}\n"
    )


def options_of(options: str) -> GrpcUpstreamOptions:
    cfg = parse_config(config_text(options), "sidecar.yaml", {}, schemas=SCHEMAS)
    return GrpcUpstreamOptions.model_validate(cfg.upstreams["inv"].options)


def problems(options: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config_text(options), "sidecar.yaml", {}, schemas=SCHEMAS)
    return [str(p) for p in info.value.problems]


def test_a_keepalive_time_of_10ms_is_refused_naming_grpcs_minimum_and_why() -> None:
    """``keepalive_time: 10ms`` (100 PINGs a second) is refused with gRPC's 10 s minimum and
    the GOAWAY too_many_pings a gRPC server would answer it with."""
    [problem] = problems("keepalive_time: 10ms")
    assert problem.startswith(
        f"{KEY}.keepalive_time: must be at least 10s (gRPC's minimum), got 10ms: "
    )
    assert "grpc-go, grpc-java" in problem
    assert "every 5 minutes" in problem
    assert "GOAWAY too_many_pings" in problem
    assert problem.endswith("leave it unset for no pings")


@pytest.mark.parametrize(
    ("spelled", "shown"), [("0s", "0s"), ("500ms", "500ms"), ("9.5s", "9.5s"), ("5", "5s")]
)
def test_every_keepalive_time_under_10s_is_refused(spelled: str, shown: str) -> None:
    """Any keepalive_time under 10 s, 0 included, is refused rather than raised to 10 s quietly."""
    [problem] = problems(f"keepalive_time: {spelled}")
    assert problem.startswith(f"{KEY}.keepalive_time: must be at least 10s")
    assert f"got {shown}:" in problem


@pytest.mark.parametrize(("spelled", "seconds"), [("10s", 10.0), ("10", 10.0), ("5m", 300.0)])
def test_a_keepalive_time_of_10s_or_more_is_taken_as_written(spelled: str, seconds: float) -> None:
    """10 s, gRPC's minimum, and anything longer is kept exactly as the file says."""
    assert options_of(f"keepalive_time: {spelled}").keepalive_time == seconds


def test_no_keepalive_options_mean_no_pings_and_a_20s_timeout() -> None:
    """Without keepalive options the upstream gets no PINGs (gRPC's default), timeout 20 s."""
    options = options_of("")
    assert options.keepalive_time is None
    assert options.keepalive_timeout == 20.0
    assert options.keepalive_permit_without_calls is False


def test_a_keepalive_timeout_of_zero_is_refused() -> None:
    """A PING answer can never arrive within 0 s, so ``keepalive_timeout: 0s`` is refused."""
    assert problems("keepalive_time: 30s, keepalive_timeout: 0s") == [
        f"{KEY}.keepalive_timeout: must be longer than 0s"
    ]


@pytest.mark.parametrize(("spelled", "shown"), [("16m", "16m"), ("1h", "60m"), ("901", "15.0167m")])
def test_a_keepalive_timeout_over_15_minutes_is_refused_saying_why(
    spelled: str, shown: str
) -> None:
    """A wait for a PING answer longer than 15 minutes is refused: its calls would sit on a
    dead connection that long, longer than the kernel itself keeps one."""
    [problem] = problems(f"keepalive_time: 30s, keepalive_timeout: {spelled}")
    assert problem.startswith(f"{KEY}.keepalive_timeout: must be at most 15m, got {shown}: ")
    assert "dead" in problem


@pytest.mark.parametrize(("spelled", "seconds"), [("250ms", 0.25), ("20s", 20.0), ("15m", 900.0)])
def test_a_keepalive_timeout_up_to_15_minutes_is_taken(spelled: str, seconds: float) -> None:
    """Any positive keepalive_timeout up to 15 minutes is kept as written."""
    options = options_of(f"keepalive_time: 30s, keepalive_timeout: {spelled}")
    assert options.keepalive_timeout == seconds


@pytest.mark.parametrize("time", ["", "keepalive_time: null, "])
def test_permit_without_calls_with_keepalive_off_is_refused(time: str) -> None:
    """``keepalive_permit_without_calls: true`` without a keepalive_time would send no PING at
    all; it is refused, saying to set keepalive_time or remove it."""
    assert problems(f"{time}keepalive_permit_without_calls: true") == [
        f"{KEY}.keepalive_permit_without_calls: sends no PING while keepalive_time is unset "
        "(keepalive is off): set keepalive_time (at least 10s) or remove this option"
    ]


def test_permit_without_calls_with_a_keepalive_time_is_taken() -> None:
    """With a keepalive_time, PINGs without calls in flight are allowed as asked."""
    options = options_of("keepalive_time: 1m, keepalive_permit_without_calls: true")
    assert (options.keepalive_time, options.keepalive_permit_without_calls) == (60.0, True)


def test_permit_without_calls_false_needs_no_keepalive_time() -> None:
    """Saying ``false`` (the default) without a keepalive_time is no contradiction."""
    assert options_of("keepalive_permit_without_calls: false").keepalive_time is None


def test_a_refused_keepalive_time_is_the_only_problem_reported_with_permit() -> None:
    """A too-short keepalive_time with permit_without_calls is one problem, at keepalive_time:
    the permit is not also blamed for a keepalive that was set."""
    found = problems("keepalive_time: 1s, keepalive_permit_without_calls: true")
    assert [p.split(": ")[1] for p in found] == ["upstreams.inv.options.keepalive_time"]


def test_the_model_refuses_the_same_values_outside_a_config_file() -> None:
    """The limits belong to the options model, so a channel built from options in code (as
    the adapter does) cannot hold a keepalive the config would refuse."""
    bad: list[dict[str, Any]] = [
        {"keepalive_time": 1.0},
        {"keepalive_time": 30.0, "keepalive_timeout": 3600.0},
        {"keepalive_permit_without_calls": True},
    ]
    for options in bad:
        with pytest.raises(ValueError, match="keepalive|must be"):
            GrpcUpstreamOptions.model_validate(options)
