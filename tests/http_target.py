"""A throw-away HTTP server on 127.0.0.1 for tests of code that makes HTTP requests (hooks,
probes): ``async with serve(handle) as port`` routes every GET to ``handle`` and stops the
server on exit."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(handle: Handler) -> AsyncIterator[int]:
    """Serve ``handle`` on 127.0.0.1 on a free port; yields the port."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
