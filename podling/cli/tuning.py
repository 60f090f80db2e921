"""What ``podling server`` and ``podling agent`` set up in their own process first."""

from __future__ import annotations

from ..util.fdlimit import raise_open_files_limit
from ..util.libc import limit_malloc_arenas
from ..util.tlsmemory import limit_tls_buffers


def tune_process() -> None:
    """Call before any thread starts: fewer malloc arenas (idle memory), the soft open-file
    limit at the hard one (a connection is a file descriptor), small TLS read buffers (each
    connection holds one)."""
    limit_malloc_arenas()
    raise_open_files_limit()
    limit_tls_buffers()
