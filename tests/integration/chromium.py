"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven over the DevTools protocol with
aiohttp's websocket client: no Playwright, no browser download.

``async with Chromium() as browser: page = await browser.new_page(1366, 768)`` then
``await page.navigate(url)``, ``await page.evaluate("js")``, ``await page.screenshot()``. The
browser runs on a private profile directory with ``--remote-debugging-port=0``; its address is
read from the ``DevTools listening on ws://...`` line of its stderr (bounded wait). It is killed
and its profile removed on exit. A browser that cannot start raises: tests that need it fail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import shutil
import tempfile
from collections import deque
from typing import Any

import aiohttp

EXECUTABLE = "/usr/bin/chromium"
#: flags that work headless as root: no sandbox (Chromium refuses root with one), no phoning home
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
START_TIMEOUT = 30.0
CALL_TIMEOUT = 15.0
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class CdpError(RuntimeError):
    pass


class Chromium:
    """One headless browser process and its DevTools websocket."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="sidecar-chromium-")
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr: deque[str] = deque(maxlen=50)  # the last lines, for failure messages
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: events received, as (session id, method, params); bounded
        self.events: deque[tuple[str | None, str, dict[str, Any]]] = deque(maxlen=1000)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Chromium:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            EXECUTABLE,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        url = None
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while url is None:
                    raw = await self.proc.stderr.readline()
                    if not raw:
                        break  # it exited
                    line = raw.decode(errors="replace").rstrip()
                    self.stderr.append(line)
                    if m := _LISTENING.search(line):
                        url = m.group(1)
        except TimeoutError:
            pass
        if url is None:
            raise RuntimeError(
                f"chromium did not start within {START_TIMEOUT}s; its stderr:\n"
                + "\n".join(self.stderr)
            )
        # keep reading its stderr, or a chatty browser would block on a full pipe
        self._tasks.append(asyncio.create_task(self._drain_stderr()))
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            url, max_msg_size=64 << 20, timeout=aiohttp.ClientWSTimeout(ws_close=CALL_TIMEOUT)
        )
        self._tasks.append(asyncio.create_task(self._receive()))

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.stderr.append(raw.decode(errors="replace").rstrip())

    async def _receive(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                if "error" in data:
                    future.set_exception(CdpError(str(data["error"])))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                self.events.append((data.get("sessionId"), data["method"], data.get("params", {})))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (bounded wait)."""
        assert self._ws is not None
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_json(message)
        async with asyncio.timeout(CALL_TIMEOUT):
            return await future

    async def new_page(self, width: int, height: int) -> Page:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page = Page(self, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return page

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab, through a flattened DevTools session."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, self.session, **params)

    async def navigate(self, url: str) -> None:
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        result = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])

    def problems(self) -> list[str]:
        """Script exceptions and error-level log entries (CSP refusals, failed loads) so far."""
        out = []
        for session, method, params in self.browser.events:
            if session != self.session:
                continue
            if method == "Runtime.exceptionThrown":
                out.append(str(params["exceptionDetails"]))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(params["entry"].get("text", ""))
        return out
