"""Drives headless Chromium over the DevTools protocol for the console's tests (Python standard library only).

Chromium is started with --remote-debugging-pipe: it reads protocol messages on fd 3 and writes them on fd 4, each
ended by a NUL byte, so no WebSocket client is needed. Commands come on stdin, one JSON object per line; each gets
one JSON line on stdout: {"ok": true, "value": ...} or {"ok": false, "error": "..."}.

  {"op": "open", "url": "http://127.0.0.1:8080/#/"}       a new page at that address
  {"op": "eval", "js": "document.title"}                  the expression's value (promises awaited)
  {"op": "wait", "js": "...", "timeout": 20}              polls until the expression is truthy; its value
  {"op": "click", "selector": "button[data-action=cancel]"}
  {"op": "screenshot", "path": "/tmp/page.png", "full": false}    the whole page, or (full false) the window
"""

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class Chromium:
    def __init__(self):
        binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
        if binary is None:
            raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
        to_chrome_read, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_write = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="troupe-chromium-")

        def arrange():
            # A lower priority: a browser starting (its font cache, its helper processes) takes both cores of a small
            # machine for seconds, and the test suite's other tests run meanwhile with deadlines of their own.
            os.nice(10)
            # The protocol's descriptors must be 3 and 4 in the browser; move them out of the way first.
            read, write = os.dup(to_chrome_read), os.dup(from_chrome_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-pipe", "--user-data-dir=" + self.profile, "--window-size=1280,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_chrome_read, from_chrome_write), preexec_fn=arrange,
            # A group of its own: closing kills the browser's helper processes with it.
            start_new_session=True)
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                    return reply.get("result", {})
            # Wait for the browser at most until the deadline: a read alone could wait for ever.
            ready, _, _ = select.select([self.from_chrome], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self.buffer += chunk
        raise RuntimeError(f"{method}: no answer within {timeout}s")

    def open(self, url):
        # The first call waits for the browser to start, which takes long on a loaded machine.
        first = self.session is None
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False, timeout=120 if first else 30)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Page.navigate", {"url": url})
        return target

    def eval(self, js):
        result = self.call("Runtime.evaluate", {"expression": js, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result.get("result", {}).get("value")

    def wait(self, js, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.eval(js)
                if last:
                    return last
            except RuntimeError as error:
                last = str(error)
            time.sleep(0.1)
        raise RuntimeError(f"still not true after {timeout}s: {js} (last: {last!r})")

    def screenshot(self, path, full=True):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full})["data"]
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # Whatever of the browser is left (a main process slow to close on a loaded machine, its helpers): killed.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    browser = Chromium()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            try:
                op = command["op"]
                if op == "open":
                    value = browser.open(command["url"])
                elif op == "eval":
                    value = browser.eval(command["js"])
                elif op == "wait":
                    value = browser.wait(command["js"], float(command.get("timeout", 20)))
                elif op == "click":
                    selector = json.dumps(command["selector"])
                    value = browser.wait(f"(() => {{ const e = document.querySelector({selector}); if (!e) return false; e.click(); return true; }})()",
                                         float(command.get("timeout", 20)))
                elif op == "screenshot":
                    value = browser.screenshot(command["path"], bool(command.get("full", True)))
                else:
                    raise RuntimeError(f"unknown op {op!r}")
                reply = {"ok": True, "value": value}
            except Exception as error:  # reported to the test, which fails with it
                reply = {"ok": False, "error": str(error)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        browser.close()


if __name__ == "__main__":
    main()
