"""The token formats shared by the server (which writes them) and agents or later servers
(which read them).

    K10<sha256 of the server CA certificate, hex>::node:<join secret>      agents join with it
    K10<sha256 of the server CA certificate, hex>::server:<server secret>  servers join with it

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
SERVER = "server"
_PATTERN = re.compile(r"^K10([0-9a-f]{64})::([a-z]+):(\S+)$")


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str  # sha256 hex of the CA certificate file's bytes (PEM)
    secret: str
    user: str = USER  # "node" (the join token) or "server" (the server token)

    def __str__(self) -> str:
        return f"{PREFIX}{self.ca_hash}::{self.user}:{self.secret}"


def ca_hash(ca_pem: bytes) -> str:
    """The hash a join token pins: sha256 over the CA certificate exactly as served."""
    return hashlib.sha256(ca_pem).hexdigest()


def parse(text: str, user: str = USER) -> JoinToken | None:
    """A token of ``user``'s kind (by default a join token), or None when ``text`` is some
    other (e.g. an admin) token."""
    match = _PATTERN.match(text.strip())
    if match is None or match.group(2) != user:
        return None
    return JoinToken(match.group(1), match.group(3), user)
