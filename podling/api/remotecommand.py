"""Wire facts of Kubernetes' remote-command (exec / attach) and port-forward streams.

No I/O: channel numbers, protocol names, the status documents that end a session and the
options parsed from an exec / attach query. Used by the API server (which speaks every client
protocol) and by the node API (which speaks ``v5.channel.k8s.io`` only); see
docs/streaming.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# WebSocket channel protocols, newest first (the order the server prefers).
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
CHANNEL_PROTOCOLS = (V5, V4, V3, V2, V1)

# Port-forward protocols.
PORT_FORWARD_SPDY = "portforward.k8s.io"
PORT_FORWARD_WEBSOCKET_SPDY = "SPDY/3.1+portforward.k8s.io"
PORT_FORWARD_NODE = "portforward.podling.io"  # the node API's own, one WebSocket a connection

# Channels (byte 0 of a WebSocket message; SPDY names them in the ``streamtype`` header).
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
                "resize": RESIZE}

#: The node API's answer header carrying the error text of a refused upgrade (a WebSocket
#: client sees headers but no body of a non-101 answer).
NODE_ERROR_HEADER = "X-Podling-Error"

#: How long a SPDY client may take to open the streams the request asked for (Kubernetes' value).
STREAM_CREATION_TIMEOUT = 30.0


def is_true(value: str | None) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


@dataclass(frozen=True)
class StreamOptions:
    """What an exec / attach request asks for (``PodExecOptions`` / ``PodAttachOptions``)."""

    container: str = ""
    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str], commands: Sequence[str]) -> "StreamOptions":
        """From the query; ``commands`` are the repeated ``command`` parameters. With a TTY
        there is no separate stderr (Kubernetes folds it into stdout)."""
        tty = is_true(query.get("tty"))
        return cls(container=query.get("container", ""), command=tuple(commands),
                   stdin=is_true(query.get("stdin")), stdout=is_true(query.get("stdout")),
                   stderr=is_true(query.get("stderr")) and not tty, tty=tty)

    def query(self) -> list[tuple[str, str]]:
        """The same options as query pairs (for the node API)."""
        pairs = [("command", c) for c in self.command]
        pairs += [(k, "true") for k in ("stdin", "stdout", "stderr", "tty") if getattr(self, k)]
        return pairs


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_code_status(command: Sequence[str], code: int) -> dict[str, Any]:
    """The kubelet's Status for a command that exited non-zero (kubectl prints
    ``command terminated with exit code N`` and exits N)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str, *, reason: str = "InternalError",
                   code: int = 500) -> dict[str, Any]:
    """A session that failed for another reason than the command's exit code."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason,
            "code": code}


def encode_status(status: Mapping[str, Any]) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def status_text(status: Mapping[str, Any]) -> str:
    """What a v1–v3 client gets on the error channel: the message of a failure, else ''."""
    if status.get("status") == "Success":
        return ""
    return str(status.get("message") or "error")


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) of one resize message ``{"Width":W,"Height":H}``; None if malformed."""
    try:
        size = json.loads(data)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, TypeError, KeyError):
        return None
    if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
        return None
    return width, height


def encode_resize(width: int, height: int) -> bytes:
    return json.dumps({"Width": width, "Height": height}).encode()
