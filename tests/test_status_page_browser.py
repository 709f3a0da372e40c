"""The status page (`/`) in a real browser: Debian's headless Chromium, with JavaScript switched off.

`terway-exporter demo` serves the demo scenario; once its page shows findings, Chromium loads it
through the DevTools protocol (over aiohttp's WebSocket client), a screenshot is saved under the
test's temporary folder, and the rendered page is read back: `innerText` holds only what is
rendered, and each finding's box must have a size and lie on the page. The findings must be those
`check` reports on the same state, in the order of the areas.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from support.stack import http_get, start_demo, wait_until
from terway_exporter.findings.model import AREAS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh installs it)"),
    pytest.mark.slow,  # a demo process and headless Chromium
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The findings the demo scenario shows from the start (tests/test_check_capacity.py holds check to them).
DEMO_FINDINGS = {"TerwayVSwitchIPsLow", "TerwayLeakedENIs", "TerwayDaemonCrashLooping"}


class DevTools:
    """The few Chrome DevTools Protocol calls the test needs, on one page's WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        return (await self.until(lambda m: m.get("id") == call_id)).get("result", {})

    async def until(self, wanted) -> dict:
        """Read messages until one matches (events arrive in between); the test's timeout bounds it."""
        async for message in self.ws:
            data = json.loads(message.data)
            if "error" in data and data.get("id"):
                raise AssertionError(f"DevTools error: {data['error']}")
            if wanted(data):
                return data
        raise AssertionError("the DevTools connection closed")

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def start_chromium(workdir: Path) -> tuple[subprocess.Popen, int]:
    profile = workdir / "chromium-profile"
    proc = subprocess.Popen(
        # No connection beyond loopback: Chromium's background services (updates, sync, QUIC, safe browsing)
        # would otherwise reach out at start.
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "--window-size=1280,2000", "--blink-settings=scriptEnabled=false", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=(workdir / "chromium.log").open("wb"), start_new_session=True)
    active = profile / "DevToolsActivePort"  # Chromium writes its port there once it listens

    def port() -> int | None:
        if proc.poll() is not None:
            log_tail = (workdir / "chromium.log").read_text()[-2000:]
            raise RuntimeError(f"chromium exited with {proc.returncode}: {log_tail}")
        lines = active.read_text().splitlines() if active.exists() else []
        return int(lines[0]) if lines and lines[0].isdigit() else None

    try:
        return proc, wait_until(port, 60, "Chromium's DevTools port")
    except Exception:
        proc.kill()
        raise


async def test_status_page_shows_the_findings_in_a_real_browser(tmp_path):
    demo, port = start_demo("demo", tmp_path)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/"
        # The page is rendered with the metrics: wait for the render that has read every source.
        every_source_up = re.compile(r"sources (\d+)/\1 up")
        wait_until(lambda: every_source_up.search(http_get(url)[1].decode()), 90,
                   "the status page to judge all sources")
        served = http_get(url)[1].decode()
        assert "<script" not in served
        browser, devtools_port = start_chromium(tmp_path)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
                pages = [t for t in await response.json() if t["type"] == "page"]
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=64 * 2**20) as ws:
                tools = DevTools(ws)
                await tools.call("Page.enable")
                await tools.call("Page.navigate", url=url)
                await tools.until(lambda m: m.get("method") == "Page.loadEventFired")
                shot = await tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                text = await tools.evaluate("document.body.innerText")
                boxes = await tools.evaluate(
                    "Array.from(document.querySelectorAll('.finding')).map(e => {"
                    " const r = e.getBoundingClientRect(), s = getComputedStyle(e);"
                    " return {id: e.id, w: r.width, h: r.height, top: r.top + window.scrollY,"
                    " visible: s.visibility === 'visible' && s.display !== 'none'}; })")
                links = await tools.evaluate(
                    "Array.from(document.querySelectorAll('.finding a')).map(a => a.href)")
                page_height = await tools.evaluate("document.documentElement.scrollHeight")
                scripts_ran = await tools.evaluate("document.scripts.length")
    finally:
        if browser is not None:
            browser.kill()
            browser.wait(10)
        demo.stop()
    screenshot = tmp_path / "status-page.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE) and screenshot.stat().st_size > 20_000
    assert scripts_ran == 0
    # Every finding is rendered: a box with a size, on the page, and its name and evidence in the text.
    shown = {box["id"] for box in boxes}
    assert DEMO_FINDINGS <= shown, shown
    for box in boxes:
        assert box["visible"] and box["w"] > 200 and box["h"] > 30 and 0 <= box["top"] < page_height, box
    for alert in shown:
        assert alert in text
        assert f"https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/{alert}.md" in links
    assert "vswitch/vsw-bp1demoj00000000000001: 12 of 252 IPs free" in text
    assert re.search(r"node/cn-hangzhou\.192\.168\.16\.11: container terway in CrashLoopBackOff", text)
    # The areas in the order `check` prints them, the sources with their state, the links to the metrics.
    positions = [text.find(title) for _, title in AREAS]
    assert -1 not in positions and positions == sorted(positions)
    assert "cloud_vswitches" in text and "/metrics" in text
    assert re.search(r"Summary: CRITICAL: 1 critical, \d+ warning\(s\)", text)
