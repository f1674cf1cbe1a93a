"""ReloadReport: the admin API's Reload answers with the problems its own reload logged, and
never with lines another task (a SIGHUP reload running meanwhile) logged."""

from __future__ import annotations

import asyncio
import logging

from sidecar.grpc.reload_report import MAX_PROBLEMS, ReloadReport

log = logging.getLogger("sidecar")


async def test_problems_and_restart_keys_come_from_the_reloads_own_records() -> None:
    """Each refused key's line, the restart-only keys; the echo line and info lines are left out."""
    with ReloadReport() as report:
        log.error("config refused", extra={"fields": {"problem": "f.yaml: a.b: bad"}})
        log.error("config refused", extra={"fields": {"problem": "f.yaml: c: worse"}})
        log.error("the old config keeps serving", extra={"fields": {"file": "f.yaml"}})
        log.warning(
            "these changes take effect after a restart; the old values stay until then",
            extra={"fields": {"keys": ["http.address"]}},
        )
        log.info("config reloaded")
    assert report.problems == ["f.yaml: a.b: bad", "f.yaml: c: worse"]
    assert report.restart_required == ["http.address"]
    log.error("config refused", extra={"fields": {"problem": "after the report closed"}})
    assert len(report.problems) == 2


async def test_a_skipped_reload_or_an_unexpected_error_says_why() -> None:
    """No ``problem`` field: the message, its fields, and the error's type and text."""
    with ReloadReport() as report:
        log.warning("reload skipped", extra={"fields": {"state": "draining"}})
        try:
            raise KeyError("boom")
        except KeyError as e:
            log.error("config refused: unexpected error while reloading", exc_info=e)
    assert report.problems == [
        "reload skipped: state=draining",
        "config refused: unexpected error while reloading: KeyError: 'boom'",
    ]


async def test_records_of_another_task_are_not_this_reloads() -> None:
    """A reload running in another task at the same time keeps its problems to itself."""

    async def other() -> None:
        log.error("config refused", extra={"fields": {"problem": "someone else's"}})

    with ReloadReport() as report:
        await asyncio.create_task(other())
        log.error("config refused", extra={"fields": {"problem": "mine"}})
    assert report.problems == ["mine"]


async def test_problems_are_bounded() -> None:
    """A file with thousands of problems does not make an unbounded answer."""
    with ReloadReport() as report:
        for i in range(MAX_PROBLEMS + 50):
            log.error("config refused", extra={"fields": {"problem": f"p{i}"}})
    assert len(report.problems) == MAX_PROBLEMS
