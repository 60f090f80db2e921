"""``podling image``: the node's image store from the command line.

    podling image [--data-dir DIR] [--registries FILE] pull REF
    podling image ... import FILE [--base-name NAME] [--progress]
    podling image ... ls [-q] [--format table|json]
    podling image ... inspect REF
    podling image ... rm REF...
    podling image ... prune [--all]
    podling image build-demo DIR [--deb-dir DIR] [--progress]
    podling image ... registry-demo DIR [--port N]

The flags (and ``--data-dir`` / ``--registries``, accepted before or after the subcommand)
are defined in :mod:`podling.cli.flags`. Progress goes to stderr, only when it is a terminal
or with ``--progress``; stdout keeps the results.

Exit status: 0 on success, 1 on an image error (the message goes to stderr), 2 on usage.
``registry-demo`` runs in the foreground until interrupted; the registry stops with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable

import yaml

from ..images.errors import ImageError
from ..images.interface import Image, PullProgress

if TYPE_CHECKING:  # imported when an image command runs, not by every `podling` start
    from ..images.service import LocalImageService

DEMO_IMAGES = ("busybox", "nginx")


def run(args: argparse.Namespace) -> int:
    """Run one ``image`` subcommand; returns the exit status."""
    handler = _HANDLERS[args.image_command]
    try:
        return asyncio.run(handler(args))
    except ImageError as e:
        print(f"podling: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _service(args: argparse.Namespace) -> LocalImageService:
    from ..images.service import ImageStoreConfig, LocalImageService
    registries = args.registries or os.path.join(args.data_dir, "registries.yaml")
    docker_configs = (os.path.join(args.data_dir, "config.json"),
                      os.path.expanduser("~/.docker/config.json"))
    return LocalImageService(ImageStoreConfig.for_data_dir(
        args.data_dir, registries_path=registries, docker_config_paths=docker_configs))


# ---- subcommands ---------------------------------------------------------------------

async def _pull(args: argparse.Namespace) -> int:
    async with _service(args) as svc:
        if args.quiet:
            image = await svc.pull_image(args.ref)
        else:
            with _ProgressBars() as bars:
                image = await svc.pull_image(args.ref, progress=bars.update)
    print(f"{image.names[0] if image.names else args.ref} {image.id}")
    return 0


async def _import(args: argparse.Namespace) -> int:
    size = _size(args.file)
    async with _service(args) as svc:
        with Activity(f"importing {args.file} ({human_size(size)})", args.progress):
            images = await svc.import_archive(args.file, base_name=args.base_name or None)
    for image in images:
        print(f"imported {', '.join(image.names) or '<untagged>'} {image.id}")
    return 0


async def _ls(args: argparse.Namespace) -> int:
    async with _service(args) as svc:
        images = await svc.list_images()
    if args.quiet:
        for image in images:
            print(image.id)
        return 0
    if args.format == "json":
        print(json.dumps([_image_json(image) for image in images], indent=2))
        return 0
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "SIZE")]
    for image in images:
        for repo, tag in _repo_tags(image):
            rows.append((repo, tag, _short_id(image.id), human_size(image.size)))
    _print_table(rows)
    return 0


async def _inspect(args: argparse.Namespace) -> int:
    async with _service(args) as svc:
        image = await svc.image_status(args.ref)
        if image is None:
            raise ImageError(f"no such image: {args.ref}")
        doc = asdict(image)
        doc["rootfs_layers"] = svc.rootfs_layers(image)
    print(json.dumps(doc, indent=2))
    return 0


async def _rm(args: argparse.Namespace) -> int:
    status = 0
    async with _service(args) as svc:
        for ref in args.refs:
            image = await svc.image_status(ref)
            if image is None:
                print(f"podling: no such image: {ref}", file=sys.stderr)
                status = 1
                continue
            await svc.remove_image(ref)
            gone = await svc.image_status(image.id) is None
            print(f"{'Deleted' if gone else 'Untagged'}: {ref}")
    return status


async def _prune(args: argparse.Namespace) -> int:
    async with _service(args) as svc:
        result = await svc.garbage_collect(dangling_only=not args.all)
    for image_id in result.images:
        print(f"Deleted: {image_id}")
    print(f"Removed {len(result.images)} image(s), {result.blobs} blob(s), "
          f"{result.layers} layer(s); freed {human_size(result.bytes_freed)}")
    return 0


async def _build_demo(args: argparse.Namespace) -> int:
    from ..images.build_demo import BuildError, build_all
    try:
        with Activity(f"building the offline images in {args.dir}",
                      getattr(args, "progress", False)):
            paths = await asyncio.to_thread(build_all, args.dir, deb_dir=args.deb_dir or None)
    except BuildError as e:
        raise ImageError(f"build-demo: {e}") from e
    for path in paths:
        print(f"{path} {human_size(path.stat().st_size)}")
    return 0


async def _registry_demo(args: argparse.Namespace) -> int:
    """Build (if needed) and push the demo images, write registries.yaml, serve."""
    from ..images.localregistry import LocalRegistry, mirror_config
    from ..images.refs import parse_reference
    from ..images.registry import RegistryClient
    from ..util.files import atomic_write
    archives = [os.path.join(args.dir, f"{name}.tar") for name in DEMO_IMAGES]
    if not all(os.path.exists(p) for p in archives):
        await _build_demo(argparse.Namespace(dir=args.dir, deb_dir=args.deb_dir,
                                             progress=False))
    reg = LocalRegistry(os.path.join(args.dir, "registry"), port=args.port)
    registries = args.registries or os.path.join(args.data_dir, "registries.yaml")
    async with reg:
        async with RegistryClient() as client:
            for name, archive in zip(DEMO_IMAGES, archives):
                ref = parse_reference(f"{reg.host}/library/{name}:latest")
                await client.push_oci_layout(archive, ref)
                print(f"pushed {ref}", flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(registries)), exist_ok=True)
        # replaced in one step: a running agent reloads it (never half-written) on its own
        atomic_write(registries, yaml.safe_dump(mirror_config(reg)).encode(), 0o644)
        print(f"registry {reg.url} (pid {reg.pid}); docker.io mirrored in {registries}",
              flush=True)
        await _wait_for_signal()
    return 0


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


_HANDLERS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "pull": _pull, "import": _import, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm,
    "prune": _prune, "build-demo": _build_demo, "registry-demo": _registry_demo,
}


# ---- output helpers ------------------------------------------------------------------

def _repo_tags(image: Image) -> list[tuple[str, str]]:
    """(REPOSITORY, TAG) rows; ``<none>`` for untagged or digest-only names."""
    rows = []
    for name in image.names:
        if "@" in name:
            rows.append((name.partition("@")[0], "<none>"))
        else:
            repo, _, tag = name.rpartition(":")
            rows.append((repo, tag))
    return rows or [("<none>", "<none>")]


def _image_json(image: Image) -> dict[str, Any]:
    """An image as ``ls --format json`` lists it (crictl's field names)."""
    return {"id": image.id, "repoTags": [n for n in image.names if "@" not in n],
            "repoDigests": list(image.repo_digests), "size": image.size,
            "manifestDigest": image.manifest_digest, "os": image.os,
            "architecture": image.architecture}


def _size(path: str) -> int:
    try:
        if os.path.isdir(path):
            return sum(os.path.getsize(os.path.join(d, f))
                       for d, _, files in os.walk(path) for f in files)
        return os.path.getsize(path)
    except OSError:
        raise ImageError(f"cannot read {path}") from None


def _short_id(image_id: str) -> str:
    return image_id.partition(":")[2][:13]


def human_size(n: int) -> str:
    """Sizes like crictl: 1000-based units, three significant digits."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{n}B"  # not reached


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


class _ProgressBars:
    """One rich progress bar per layer; the endpoint that serves it in the label."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TransferSpeedColumn)
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  DownloadColumn(), TransferSpeedColumn(),
                                  TextColumn("{task.fields[status]}"),
                                  console=_console())
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> "_ProgressBars":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def update(self, p: PullProgress) -> None:
        if not p.layer:
            return
        task = self._tasks.get(p.layer)
        label = p.layer.partition(":")[2][:12] + (f" ← {p.endpoint}" if p.endpoint else "")
        if task is None:
            task = self._tasks[p.layer] = self._progress.add_task(
                label, total=p.total or None, status=p.status)
        self._progress.update(task, completed=p.done, total=p.total or None,
                              description=label, status=p.status)


class Activity:
    """A spinner with the elapsed time on stderr while a step without finer progress runs
    (when stderr is a terminal, or ``force``); then one line saying it is done."""

    def __init__(self, label: str, force: bool = False) -> None:
        self.label = label
        self.enabled = force or sys.stderr.isatty()
        self._status: Any = None
        self._started = 0.0

    def __enter__(self) -> "Activity":
        import time
        self._started = time.monotonic()
        if self.enabled:
            self._status = _console().status(self.label + " …")
            self._status.__enter__()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        import time
        if self._status is not None:
            self._status.__exit__(exc_type, *exc)
        if self.enabled and exc_type is None:
            print(f"{self.label}: done in {time.monotonic() - self._started:.1f}s",
                  file=sys.stderr, flush=True)


def _console() -> Any:
    from rich.console import Console
    return Console(stderr=True)
