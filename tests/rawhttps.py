"""A tiny HTTPS client for tests that send raw bodies: a bearer token, the server's CA, one
connection per request, no retries, and the answer as it came."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from typing import Any


class RawHttps:
    def __init__(self, url: str, token: str, ca_file: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host, self.port, self.token = parsed.hostname, parsed.port, token
        self.context = ssl.create_default_context(cafile=ca_file)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json",
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, Any]:
        """Send one request (a dict or list body as JSON, a str as UTF-8, bytes as they
        are); returns (status, headers, JSON-decoded body or the raw bytes)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        all_headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
        if body is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=30)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, response.headers, json.loads(raw)
        except ValueError:
            return response.status, response.headers, raw
