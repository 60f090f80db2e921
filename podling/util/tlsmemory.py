"""The memory each TLS connection holds in asyncio.

Python 3.11's asyncio gives every TLS connection a 256 KiB read buffer
(``asyncio.sslproto.SSLProtocol.max_size``), allocated and zeroed when the connection is
accepted: 10,000 idle connections to the API server held 2.8 GiB. A TLS record carries at
most 16 KiB of data, so a buffer of 32 KiB reads a whole record, and more, per call.
"""

from __future__ import annotations

from asyncio import sslproto

TLS_READ_BUFFER = 32 * 1024


def limit_tls_buffers() -> None:
    """Give every TLS connection made from now on a TLS_READ_BUFFER read buffer. Call once
    at start, before serving; a Python without the attribute is left alone."""
    if hasattr(sslproto.SSLProtocol, "max_size"):
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
