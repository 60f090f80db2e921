"""Install-time import of the offline images: ``busybox`` and ``nginx`` into a node's store.

    python -m podling.images.offline [--data-dir /var/lib/podling] [--archives DIR]

run by ``make up`` (scripts/podling-up) before the server starts; ``podling server`` also runs
:func:`import_at_start` in the background when its local node starts (unless
``--disable-offline-images``), without any download. For each image that the store
at ``<data-dir>/images`` lacks (``docker.io/library/busybox:latest``,
``docker.io/library/nginx:latest``), build it from Debian packages
(:mod:`podling.images.build_demo`) and import it. busybox comes from the installed
``busybox-static`` package (a runtime dependency); nginx from the ``nginx`` and
``nginx-common`` .debs kept in ``<data-dir>/offline/debs``, fetched there once with
``apt-get download`` (Debian's mirror, never a container registry; the nginx package is not
installed, so no host service starts). An image already in the store is left alone, so the
command is idempotent and quick on a second run. ``--archives DIR`` imports ``DIR/busybox.tar``
and ``DIR/nginx.tar`` when they exist (as ``podling image build-demo DIR`` writes them) instead
of building.

When the .debs cannot be fetched (no route to Debian's mirror) busybox is still imported and
the command says what is missing; the exit status is 1 if any image could not be provided.
With the images in the store, the seed's ``image: busybox`` / ``image: nginx`` pods run with no
network: the default registries.yaml resolves docker.io through ``@nodes``, this node first.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from typing import Callable

from podling.images.build_demo import BuildError, build_busybox, build_nginx, fetch_nginx_debs
from podling.images.service import ImageStoreConfig, LocalImageService

IMAGES = {"busybox": "docker.io/library/busybox:latest",
          "nginx": "docker.io/library/nginx:latest"}


def deb_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "offline", "debs")


def ensure_nginx_debs(directory: str, fetch: Callable[[str], list[str]] = fetch_nginx_debs
                      ) -> str:
    """``directory`` holding nginx_*.deb and nginx-common_*.deb, fetched if missing."""
    os.makedirs(directory, exist_ok=True)
    names = os.listdir(directory)
    if not (any(n.startswith("nginx_") and n.endswith(".deb") for n in names)
            and any(n.startswith("nginx-common_") and n.endswith(".deb") for n in names)):
        fetch(directory)
    return directory


async def import_offline_images(data_dir: str, *, say: Callable[[str], None] = print,
                                fetch: Callable[[str], list[str]] = fetch_nginx_debs,
                                archives: str = "") -> list[str]:
    """Build (or take from ``archives``) and import what the store lacks; returns the
    problems (empty: all present)."""
    async with LocalImageService(ImageStoreConfig.for_data_dir(data_dir)) as store:
        return await import_missing(store, data_dir, say=say, fetch=fetch, archives=archives)


async def import_missing(store: LocalImageService, data_dir: str, *,
                         say: Callable[[str], None], fetch: Callable[[str], list[str]],
                         archives: str = "") -> list[str]:
    """:func:`import_offline_images` into an open ``store`` (the one a running agent uses,
    so that it sees the images at once)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="podling-offline-") as tmp:
        for name, ref in IMAGES.items():
            if await store.image_status(ref) is not None:
                say(f"{ref}: already in the store")
                continue
            prebuilt = os.path.join(archives, f"{name}.tar") if archives else ""
            try:
                archive = prebuilt if prebuilt and os.path.exists(prebuilt) else \
                    await asyncio.to_thread(_build, name, ref, tmp, data_dir, fetch)
            except BuildError as e:
                problems.append(f"{ref}: {e}")
                say(f"{ref}: cannot build it: {e}")
                continue
            images = await store.import_archive(str(archive))
            say(f"{ref}: imported ({images[0].id[:19]}, {images[0].size} bytes)")
    return problems


def _build(name: str, ref: str, tmp: str, data_dir: str,
           fetch: Callable[[str], list[str]]) -> str:
    out = os.path.join(tmp, f"{name}.tar")
    if name == "busybox":
        return str(build_busybox(out, ref))
    return str(build_nginx(out, ref, deb_dir=ensure_nginx_debs(deb_dir(data_dir), fetch)))


def no_download(directory: str) -> list[str]:
    """A ``fetch`` that never downloads: the .debs must already be in ``directory``."""
    raise BuildError(f"no nginx .debs in {directory} (`make up` or `python -m "
                     "podling.images.offline` fetches them once)")


async def import_at_start(store: LocalImageService, data_dir: str,
                          log: logging.Logger) -> None:
    """What ``podling server`` runs in the background once its local node runs: import into
    the node's ``store`` what it lacks, with no network at all (busybox from busybox-static,
    nginx only from .debs already kept in ``<data-dir>/offline/debs``); each import, or what
    is missing, is logged. Quick when both images are there."""
    def say(text: str) -> None:  # what could not be built is logged below, as a warning
        if "already in the store" not in text and "cannot build it" not in text:
            log.info("offline images: %s", text)
    try:
        problems = await import_missing(store, data_dir, say=say, fetch=no_download)
    except Exception as exc:  # noqa: BLE001 - a failed import must not stop the server
        log.warning("offline images: not imported: %s", exc)
        return
    for problem in problems:
        log.warning("offline images: %s", problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podling.images.offline",
                                     description="import the offline busybox and nginx images")
    parser.add_argument("--data-dir", default=os.environ.get("PODLING_DATA_DIR",
                                                             "/var/lib/podling"))
    parser.add_argument("--archives", default="",
                        help="take busybox.tar / nginx.tar from here when present")
    args = parser.parse_args(argv)
    problems = asyncio.run(import_offline_images(
        args.data_dir, say=lambda text: print(f"podling: {text}", flush=True),
        archives=args.archives))
    for problem in problems:
        print(f"podling: warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
