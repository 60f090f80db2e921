"""The join token format shared by the server (which writes it) and agents (which read it).

    K10<sha256 of the server CA certificate, hex>::node:<join secret>

The prefix and the ``::<user>:<secret>`` shape follow the convention k3s made familiar; the
CA hash lets an agent that has nothing but the token verify the server it fetched the CA
from (trust on first use, pinned by the hash). Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "K10"
USER = "node"
_PATTERN = re.compile(r"^K10([0-9a-f]{64})::([a-z]+):(\S+)$")


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str  # sha256 hex of the CA certificate file's bytes (PEM)
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.ca_hash}::{USER}:{self.secret}"


def ca_hash(ca_pem: bytes) -> str:
    """The hash a join token pins: sha256 over the CA certificate exactly as served."""
    return hashlib.sha256(ca_pem).hexdigest()


def parse(text: str) -> JoinToken | None:
    """A join token, or None when ``text`` is some other (e.g. an admin) token."""
    match = _PATTERN.match(text.strip())
    if match is None or match.group(2) != USER:
        return None
    return JoinToken(match.group(1), match.group(3))
