"""Small helpers shared by the ``test_kubectl_*.py`` end-to-end tests.

Nothing here sleeps and hopes: every wait polls a condition until a deadline, and output
of long-running kubectl processes (``-w``) is read line by line by a thread, with a deadline.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from typing import Callable

from builders import make_pod


def unique(prefix: str) -> str:
    """A DNS-1123 name unique to this call."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(condition: Callable[[], object], timeout: float = 20.0,
               interval: float = 0.1, message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def new_namespace(server, prefix: str = "kt") -> str:
    """Create a fresh namespace with ``kubectl create -f`` and return its name.

    (Not ``kubectl create namespace NAME``: that one is tested on its own, since kubectl
    sends it as protobuf.)
    """
    name = unique(prefix)
    server.kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    return name


def pod_manifest(name: str, namespace: str | None = None, image: str = "nginx:1.27",
                 labels: dict | None = None, spec_extra: dict | None = None,
                 container_extra: dict | None = None) -> str:
    """A one-container Pod manifest as JSON (which is valid YAML for ``kubectl -f -``)."""
    container = {"name": "main", "image": image, **(container_extra or {})}
    pod = make_pod(name, namespace or None).container(**container)
    if labels:
        pod.labels(**labels)
    return json.dumps(pod.bare().set_spec(**(spec_extra or {})).build())


def jsonpath(server, *args: str, path: str) -> str:
    return server.kubectl("get", *args, "-o", f"jsonpath={path}").stdout


def get_json(server, *args: str) -> dict:
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def is_gone(server, *args: str) -> bool:
    """True once ``kubectl get ARGS`` answers NotFound."""
    result = server.kubectl("get", *args, check=False)
    return result.returncode != 0 and "NotFound" in result.stderr


class LineReader:
    """Reads a running kubectl's stdout in a thread so tests can wait for lines with a deadline."""

    def __init__(self, process: subprocess.Popen, stream: str = "stdout"):
        self.process = process
        self._stream = getattr(process, stream)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._stream is not None
        for line in self._stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 15.0,
                 what: str = "a matching line") -> str:
        """Return the first not-yet-consumed line that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"kubectl exited ({self.process.poll()}) before {what}; "
                                     f"output so far: {self.lines!r}; stderr: {self.stderr()!r}")
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"timed out waiting for {what}; output so far: {self.lines!r}")

    def read_json_objects(self, count: int, timeout: float = 15.0) -> list[dict]:
        """Collect ``count`` JSON documents of ``-w -o json`` output."""
        deadline = time.monotonic() + timeout
        objects: list[dict] = []
        buffer: list[str] = []
        while len(objects) < count:
            remaining = max(0.0, deadline - time.monotonic())
            line = self.wait_for(lambda _l: True, timeout=remaining,
                                 what=f"JSON object #{len(objects) + 1}")
            buffer.append(line)
            # A document ends on a line that closes it: "}" (pretty-printed -o json) or a
            # whole one-line object (--output-watch-events).
            if line.endswith("}") and (line == "}" or len(buffer) == 1):
                objects.append(json.loads("\n".join(buffer)))
                buffer = []
        return objects

    def stderr(self) -> str:
        stream = self.process.stderr
        if self.process.poll() is None or stream is None or stream is self._stream:
            return "<not available>"
        return stream.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._thread.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
