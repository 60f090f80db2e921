"""The demo's images: the offline busybox and nginx archives (built from Debian packages by
:mod:`podling.images.build_demo`), and the registries.yaml that keeps the demo's nodes off
every network but their own.

The archives are taken from ``images_dir`` when it has them, else built there: busybox from
the host's ``busybox-static``, nginx from the .debs that ``make up`` keeps in
``/var/lib/podling/offline/debs`` (fetched with ``apt-get download`` only when they are not
there)."""

from __future__ import annotations

import os

from .cluster import DemoError

NAMES = ("busybox", "nginx")
#: every registry through the nodes only: the first node's store, which the others pull from
AIR_GAPPED = "mirrors:\n  \"*\":\n    endpoint: [\"@nodes\"]\ndisableDefaultEndpoint: true\n"


def demo_archives(images_dir: str, debs: str = "") -> list[str]:
    """``busybox.tar`` and ``nginx.tar`` in ``images_dir``, built there when missing (nginx
    from the .debs in ``debs`` when it has them)."""
    paths = [os.path.join(images_dir, f"{name}.tar") for name in NAMES]
    if all(os.path.exists(p) for p in paths):
        return paths
    from podling.images.build_demo import BuildError, build_all
    from podling.images.offline import deb_dir
    debs = debs or deb_dir("/var/lib/podling")
    has_debs = os.path.isdir(debs) and any(n.startswith("nginx_") for n in os.listdir(debs))
    try:
        return [str(p) for p in build_all(images_dir, deb_dir=debs if has_debs else None)]
    except BuildError as exc:
        raise DemoError(f"cannot build the demo images: {exc}") from None


def write_air_gapped(path: str) -> str:
    """Write :data:`AIR_GAPPED` to ``path``; returns ``path``."""
    with open(path, "w") as f:
        f.write(AIR_GAPPED)
    return path
