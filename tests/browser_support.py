"""Open an HTML file in headless Chromium and look at it the way a reader's browser would.

    with open_page(html_file, screenshot=tmp_path / "page.png") as page:
        assert page.console_errors == []          # console.error, uncaught exceptions, failed loads
        assert page.requests == []                # nothing fetched besides the file itself
        assert page.count("svg") == 3             # DOM queries by CSS selector
        assert page.evaluate("document.title") == "SLA report"
    # page.screenshot: the full-page PNG, taken once the page had loaded

Chromium is driven over the Chrome DevTools Protocol on `--remote-debugging-pipe` (NUL-separated
JSON on file descriptors 3 and 4), so no port, no websocket client and no package beyond the
standard library: only the Debian package `chromium` (scripts/install-system-packages.sh).
`--no-sandbox` because the tests may run as root, where Chromium refuses its sandbox.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# argv: the two descriptors, then the browser's command line
_LAUNCHER = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
             "os.execv(sys.argv[3], sys.argv[3:])")
TIMEOUT_SECONDS = 30.0


class BrowserError(AssertionError):
    """The browser could not be started or did not answer; fails the test with the reason."""


def chromium_binary() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("no headless browser found (looked for chromium, chromium-browser, google-chrome): "
                       "run scripts/install-system-packages.sh")


class _Pipe:
    """One CDP connection over the browser's debugging pipe: send a command, wait for its answer,
    keep every event that arrives meanwhile."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._out, self._in = to_browser, from_browser
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._read())

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], TIMEOUT_SECONDS)
            if not ready:
                raise BrowserError(f"chromium did not answer within {TIMEOUT_SECONDS:.0f} s")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed its debugging pipe (it crashed or could not start)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


class Page:
    """A page that has loaded: what went wrong in it, what it fetched, and its DOM."""

    def __init__(self, pipe: _Pipe, session: str, url: str, screenshot: Path | None) -> None:
        self._pipe, self._session, self.url = pipe, session, url
        self.screenshot = screenshot

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self._pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                 self._session)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def count(self, selector: str) -> int:
        return int(self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length"))

    def texts(self, selector: str) -> list[str]:
        """The text content of every element matching a CSS selector, in document order."""
        return list(self.evaluate(
            f"Array.from(document.querySelectorAll({json.dumps(selector)}), e => e.textContent.trim())"))

    @property
    def console_errors(self) -> list[str]:
        """console.error/assert calls, uncaught exceptions and browser-logged errors (failed loads, CSP)."""
        errors = []
        for event in self._events():
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors

    @property
    def requests(self) -> list[str]:
        """Every URL the page asked for besides itself (a self-contained page asks for none)."""
        return [event["params"]["request"]["url"] for event in self._events()
                if event["method"] == "Network.requestWillBeSent"
                and event["params"]["request"]["url"] != self.url]

    def _events(self) -> list[dict[str, Any]]:
        return [e for e in self._pipe.events if e.get("sessionId") == self._session and "method" in e]


@contextmanager
def open_page(html_file: Path, *, screenshot: Path | None = None, width: int = 1280,
              height: int = 900) -> Iterator[Page]:
    """Load `html_file` in a fresh headless Chromium; with `screenshot`, save a full-page PNG there."""
    profile = Path(tempfile.mkdtemp(prefix="rulesctl-chromium-"))
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # The browser reads commands from its fd 3 and writes replies to its fd 4. A small Python
    # launcher places them there and execs the browser (no preexec_fn: unsafe while other threads
    # run, as test servers do; dash's redirections take single-digit descriptors only). The ends
    # are first moved above 10 so that placing one cannot overwrite the other.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
    log = (profile / "chromium.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(high[0]), str(high[1]),
         chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
         "--mute-audio", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=high,
    )
    log.close()
    for fd in (to_browser_r, from_browser_w, *high):
        os.close(fd)
    pipe = _Pipe(to_browser_w, from_browser_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", {}, session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        url = Path(html_file).resolve().as_uri()
        pipe.send("Page.navigate", {"url": url}, session)
        pipe.wait_for("Page.loadEventFired", session)
        page = Page(pipe, session, url, screenshot)
        if screenshot is not None:
            _save_screenshot(pipe, session, width, screenshot)
        yield page
    except BrowserError as error:
        process.kill()
        process.wait()
        stderr = (profile / "chromium.log").read_text(errors="replace")[-2000:]
        raise BrowserError(f"{error}\nchromium's output:\n{stderr}") from None
    finally:
        if process.poll() is None:
            try:
                pipe.send("Browser.close")
            except (BrowserError, OSError):
                pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)


def _save_screenshot(pipe: _Pipe, session: str, width: int, path: Path) -> None:
    content = pipe.send("Page.getLayoutMetrics", {}, session)["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": max(width, content["width"]), "height": content["height"], "scale": 1}
    data = pipe.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                     session)["data"]
    Path(path).write_bytes(base64.b64decode(data))
