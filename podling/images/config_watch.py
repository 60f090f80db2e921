"""Hot reload of ``registries.yaml``: the configuration in force follows the file.

:class:`RegistriesWatch` keeps the last good :class:`RegistriesConfig` of one path.
:meth:`RegistriesWatch.check` compares the file's identity (``stat``: inode, size, mtime in
ns, or "missing") with the one last read and reloads on any change — one ``stat`` call when
nothing changed. The image service calls it before every pull, so the next pull after an edit
uses the new file, and :meth:`RegistriesWatch.run` polls it every :data:`POLL_SECONDS` in the
running agent so that a change is logged when it happens, not at the next pull.

On a change: a file that parses becomes the configuration in force, logged as one line naming
the mirrors (``registries.yaml reloaded: docker.io -> @nodes, then upstream``); a missing file
means :data:`~podling.images.config.DEFAULT_REGISTRIES`; a broken file (bad YAML, an invalid
field, unreadable) keeps the last good configuration and logs one warning saying why. The
broken file is not read again until it changes. A file that is broken from the start has no
good configuration to fall back on: :meth:`RegistriesWatch.current` raises its error (every
pull fails, naming the file) until it is fixed — a pull never goes somewhere the file did not
say.
"""

from __future__ import annotations

import asyncio
import logging
import os

from podling.images.config import InvalidRegistryConfig, RegistriesConfig, load_registries

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
_Identity = tuple[int, int, int] | None  # (inode, size, mtime_ns), None when missing


class RegistriesWatch:
    """The configuration in force for ``path`` (read at construction; see the module
    docstring). ``path`` None: the empty configuration, never reloaded."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.config = RegistriesConfig()
        self.generation = 0  # bumped on every change of ``config``
        self._seen: _Identity | str = "never"
        self._no_good: InvalidRegistryConfig | None = None  # broken since the start
        self._seen_good = False
        if path is not None:
            self.check(log_change=False)

    def current(self) -> RegistriesConfig:
        """The configuration in force; raises InvalidRegistryConfig while the file has been
        broken since the start (there is no last good one)."""
        if self._no_good is not None:
            raise self._no_good
        return self.config

    def check(self, *, log_change: bool = True) -> bool:
        """Reload when the file changed since the last check; True if ``config`` changed."""
        if self.path is None:
            return False
        identity = _identity(self.path)
        if identity == self._seen:
            return False
        self._seen = identity
        try:
            config = load_registries(self.path)
        except (InvalidRegistryConfig, OSError) as e:
            if not self._seen_good:
                self._no_good = InvalidRegistryConfig(
                    f"{self.path} is invalid (no registry is used until it is fixed): "
                    f"{_one_line(e)}")
                log.warning("%s", self._no_good)
            else:
                log.warning("%s is invalid, keeping the last good registry configuration: %s",
                            self.path, _one_line(e))
            return False
        changed = config != self.config or self._no_good is not None
        self._no_good, self._seen_good = None, True
        self.config = config
        if changed:
            self.generation += 1
        if log_change:
            log.info("%s reloaded: %s", self.path, config.describe())
        return changed

    async def run(self, interval: float = POLL_SECONDS) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # never let the watcher die silently
                log.exception("checking %s failed", self.path)


def _identity(path: str) -> _Identity:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1)  # unreadable: load_registries reports why
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
