"""The demo's images: the offline busybox and nginx archives (built from Debian packages by
:mod:`podling.images.build_demo`), reused when ``images_dir`` already has them."""

from __future__ import annotations

import os

from .cluster import DemoError

NAMES = ("busybox", "nginx")


def demo_archives(images_dir: str) -> list[str]:
    """``busybox.tar`` and ``nginx.tar`` in ``images_dir``, built there when missing."""
    paths = [os.path.join(images_dir, f"{name}.tar") for name in NAMES]
    if all(os.path.exists(p) for p in paths):
        return paths
    from podling.images.build_demo import BuildError, build_all
    try:
        return [str(p) for p in build_all(images_dir)]
    except BuildError as exc:
        raise DemoError(f"cannot build the demo images: {exc}") from None
