"""CPU and wall time of one ``imagePullPolicy: Always`` pull of an image the store has.

    python bench/image_pull_bench.py [--count N] [--archive busybox.tar]

Two cases, each in this process (no server, no agent):

* ``registry``: the store's registries.yaml mirrors docker.io to Debian's docker-registry on
  127.0.0.1 (plain http) holding the same image;
* ``node``: ``@nodes`` only, the node's own store served by a node API (TLS) on 127.0.0.1, as a
  single node resolves a ``:latest`` image under the default configuration.

The image is busybox from :mod:`podling.images.build_demo` (or ``--archive``). Prints CPU
(utime + stime) and wall time per pull; asserts nothing. Run under the shared lock:
``flock /tmp/podling-bench.lock python bench/image_pull_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from podling.agent.node.server import NodeServer  # noqa: E402
from podling.images.build_demo import build_busybox  # noqa: E402
from podling.images.localregistry import LocalRegistry, mirror_config  # noqa: E402
from podling.images.refs import parse_reference  # noqa: E402
from podling.images.registry import RegistryClient  # noqa: E402
from podling.images.service import ImageStoreConfig, LocalImageService  # noqa: E402


async def _measure(svc: LocalImageService, count: int) -> tuple[float, float]:
    await svc.ensure_image("busybox", "Always")  # warm: connections, caches
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(count):
        await svc.ensure_image("busybox", "Always")
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return cpu / count * 1000, (t1 - t0) / count * 1000


def _store(tmp: str, name: str, registries: str) -> LocalImageService:
    return LocalImageService(ImageStoreConfig(root=os.path.join(tmp, name),
                                              registries_path=registries, durable=False))


async def registry_case(tmp: str, archive: str, count: int) -> tuple[float, float]:
    async with LocalRegistry(os.path.join(tmp, "reg")) as reg:
        async with RegistryClient() as client:
            await client.push_oci_layout(archive,
                                         parse_reference(f"{reg.host}/library/busybox:latest"))
        path = os.path.join(tmp, "registry.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(mirror_config(reg), f)
        svc = _store(tmp, "images-registry", path)
        try:
            await svc.import_archive(archive)
            return await _measure(svc, count)
        finally:
            await svc.close()


async def node_case(tmp: str, archive: str, count: int) -> tuple[float, float]:
    path = os.path.join(tmp, "nodes.yaml")
    with open(path, "w") as f:
        f.write('mirrors: {docker.io: {endpoint: ["@nodes"], disable_default_endpoint: true}}\n')
    svc = _store(tmp, "images-node", path)
    server = NodeServer(token="kc", pull_token="ip", pods_dir=tmp, runtime=None,  # type: ignore
                        find_pod=lambda ns, name: None, cert_dir=os.path.join(tmp, "cert"),
                        images=svc)
    try:
        await svc.import_archive(archive)
        port = await server.start("127.0.0.1", 0)

        async def urls() -> list[str]:
            return [f"https://127.0.0.1:{port}"]
        svc.use_nodes(urls, "ip")
        return await _measure(svc, count)
    finally:
        await server.stop()
        await svc.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--archive", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podling-pullbench-") as tmp:
        archive = args.archive or str(build_busybox(os.path.join(tmp, "busybox.tar")))
        for name, case in (("registry", registry_case), ("node", node_case)):
            cpu, wall = await case(tmp, archive, args.count)
            print(f"Always pull of a present image via {name:8}: {cpu:.2f} ms CPU, "
                  f"{wall:.2f} ms wall per pull (n={args.count})")


if __name__ == "__main__":
    asyncio.run(main())
