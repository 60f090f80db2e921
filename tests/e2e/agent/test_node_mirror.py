"""The node mirror and registries.yaml hot reload, on a real two-node cluster on this machine.

Node A is `podling server`'s local agent; busybox (built from Debian's busybox-static) is
imported into its store before it starts. Node B is a `podling agent` that joins with the join
token and whose registries.yaml lists only ``@nodes`` (no upstream): an image B lacks can only
come from A's store, over A's node API. A's own registries.yaml starts pointing docker.io at a
closed port, then is edited under the running server to point at Debian's docker-registry on
127.0.0.1 (the ``demo_registry`` fixture), then broken. Real kubectl creates every pod.
The tests run in file order on one cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest
import yaml
from kubectl_util import get_json, unique, wait_until
from podling_e2e import node_leftovers, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
NODES_ONLY = 'mirrors: {docker.io: {endpoint: ["@nodes"], disable_default_endpoint: true}}\n'
CLOSED = 'mirrors: {docker.io: {endpoint: ["http://127.0.0.1:9"], disable_default_endpoint: true}}\n'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root")


def _podling(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "podling", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Two:
    """Server + local agent (node A) and a joined agent (node B)."""

    def __init__(self, server, a: dict, b: dict, registry_url: str):
        self.server, self.a, self.b, self.registry_url = server, a, b, registry_url
        self.b_process: subprocess.Popen | None = None

    def kubectl(self, *args, **kw):
        return self.server.kubectl(*args, **kw)

    def log(self, node: dict) -> str:
        with open(node["log"]) as f:
            return f.read()

    def run_pod(self, node: dict, image: str, policy: str) -> str:
        name = unique("mirror")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"nodeName": node["name"], "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "image": image,
                                        "imagePullPolicy": policy,
                                        "command": ["sh", "-c", "exec sleep 3600"]}]}}
        self.kubectl("apply", "-f", "-", input=json.dumps(pod))
        return name

    def wait_running(self, name: str, timeout: float = 90) -> None:
        def running():
            return get_json(self.server, "pod", name).get("status", {}).get("phase") \
                == "Running"
        try:
            wait_until(running, timeout=timeout, interval=0.5, message=f"{name} Running")
        except AssertionError:
            print(self.log(self.a)[-4000:], self.log(self.b)[-4000:])
            raise

    def waiting_reason(self, name: str) -> str:
        statuses = get_json(self.server, "pod", name).get("status", {}).get(
            "containerStatuses") or [{}]
        return ((statuses[0].get("state") or {}).get("waiting") or {}).get("reason", "")

    def events(self, name: str) -> list[str]:
        items = get_json(self.server, "events", "--field-selector",
                         f"involvedObject.name={name}")["items"]
        return [f"{e['reason']}: {e['message']}" for e in items]


def _node(base, name: str, tag: str, i: int) -> dict:
    data_dir = str(base / f"data-{i}")
    os.makedirs(data_dir)
    return {"name": name, "data_dir": data_dir, "run_dir": f"/run/podling-nm-{tag}-{i}",
            "bridge": f"pnm{tag}{i}", "log": str(base / f"node-{i}.log")}


def _flags(node: dict) -> list[str]:
    return ["--node-name", node["name"], "--data-dir", node["data_dir"],
            "--run-dir", node["run_dir"], "--bridge-name", node["bridge"]]


@pytest.fixture(scope="module")
def two(tmp_path_factory, demo_registry, e2e_start_server):
    from podling.images.build_demo import build_busybox
    tag = secrets.token_hex(2)
    base = tmp_path_factory.mktemp("nodemirror")
    a = _node(base, f"pnm-{tag}-a", tag, 1)
    b = _node(base, f"pnm-{tag}-b", tag, 2)
    archive = build_busybox(str(base / "busybox.tar"))
    imported = _podling("image", "--data-dir", a["data_dir"], "import", str(archive))
    assert imported.returncode == 0, imported.stderr
    _write(os.path.join(a["data_dir"], "registries.yaml"), CLOSED)
    _write(os.path.join(b["data_dir"], "registries.yaml"), NODES_ONLY)
    with open(demo_registry) as f:
        registry_url = yaml.safe_load(f)["mirrors"]["docker.io"]["endpoint"][0]
    cidr = f"10.{100 + secrets.randbelow(100)}.0.0/16"
    server = e2e_start_server(a["data_dir"], str(base / "home"), *_flags(a),
                              "--cluster-cidr", cidr, with_agent=True, log_path=a["log"])
    two = Two(server, a, b, registry_url)
    try:
        with open(b["log"], "a") as log:
            two.b_process = subprocess.Popen(
                [sys.executable, "-m", "podling", "agent", "--server", server.url,
                 "--token-file", os.path.join(a["data_dir"], "server", "node-token"),
                 "--node-api-address", "127.0.0.1", "--node-api-port", "0", *_flags(b)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)

        def both_ready():
            ready = {n["metadata"]["name"] for n in get_json(server, "nodes")["items"]
                     for c in n.get("status", {}).get("conditions", [])
                     if c["type"] == "Ready" and c["status"] == "True"}
            return ready >= {a["name"], b["name"]}
        wait_until(both_ready, timeout=60, interval=0.5, message="two Ready nodes")
        yield two
    finally:
        server.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=60s",
                       check=False, timeout=90)
        terminate(two.b_process)
        server.kill()
        purged = [_podling("purge", *_flags(n)) for n in (a, b)]
        left = [p for n in (a, b) for p in node_leftovers(
            n["name"], data_dir=n["data_dir"], run_dir=n["run_dir"], bridge=n["bridge"])]
        assert all(p.returncode == 0 for p in purged) and not left, \
            ([p.stderr for p in purged], left)


def _node_api_url(two: Two, node: dict) -> str:
    obj = get_json(two.server, "node", node["name"])
    return obj["metadata"]["annotations"]["podling.io/node-api"]


def test_second_node_pulls_what_it_lacks_from_the_first(two):
    name = two.run_pod(two.b, "busybox", "IfNotPresent")
    two.wait_running(name)
    a_url = _node_api_url(two, two.a)
    log = two.log(two.b)
    # manifest and blobs came from node A's node API (B's only other endpoint is itself)
    assert re.search(rf"manifest sha256:\w+ of docker.io/library/busybox:latest served by "
                     rf"{re.escape(a_url)}", log), log[-3000:]
    assert re.search(rf"blob sha256:\w+ \(\d+ bytes\) of .*busybox.* served by "
                     rf"{re.escape(a_url)}", log)
    assert any(e.startswith("Pulled: Successfully pulled image \"busybox\"")
               for e in two.events(name)), two.events(name)


def test_always_against_the_node_mirror_downloads_nothing_twice(two):
    before = two.log(two.b).count("served by")
    name = two.run_pod(two.b, "busybox", "Always")
    two.wait_running(name)
    log = two.log(two.b)
    b_url = _node_api_url(two, two.b)
    assert re.search(rf"docker.io/library/busybox:latest is up to date \(sha256:\w+, "
                     rf"resolved by {re.escape(b_url)}\)", log), log[-3000:]
    assert log.count("served by") == before  # no manifest GET, no blob, from anywhere
    assert any(e.startswith("Pulled: Successfully pulled image") for e in two.events(name))


def test_editing_registries_yaml_changes_where_the_next_pull_goes(two):
    name = two.run_pod(two.a, "nginx", "IfNotPresent")  # not on any node; CLOSED is a dead end
    wait_until(lambda: two.waiting_reason(name) in ("ErrImagePull", "ImagePullBackOff"),
               timeout=60, interval=0.5, message="nginx failing to pull")
    assert "http://127.0.0.1:9" in "\n".join(two.events(name))
    path = os.path.join(two.a["data_dir"], "registries.yaml")
    _write(path, f'mirrors: {{docker.io: {{endpoint: ["{two.registry_url}"], '
                 'disable_default_endpoint: true}}\n')
    wait_until(lambda: f"reloaded: docker.io -> {two.registry_url} only" in two.log(two.a),
               timeout=20, interval=0.3, message="the reload logged")
    two.wait_running(name, timeout=90)  # the next retry pulls from the registry
    assert re.search(rf"manifest sha256:\w+ of docker.io/library/nginx:latest served by "
                     rf"{re.escape(two.registry_url)}", two.log(two.a))


def test_a_broken_file_keeps_the_last_good_configuration(two):
    from podling.images.refs import parse_reference
    from podling.images.registry import RegistryClient
    from podling.images.build_demo import build_busybox
    path = os.path.join(two.a["data_dir"], "registries.yaml")
    _write(path, "mirrors: [this is not yaml\n")
    wait_until(lambda: "keeping the last good registry configuration" in two.log(two.a),
               timeout=20, interval=0.3, message="the broken file reported")
    # an image only the registry has: pulled through the last good configuration
    host = two.registry_url.split("://", 1)[1]
    archive = build_busybox(os.path.join(two.a["data_dir"], "..", "extra.tar"))

    async def push() -> None:
        async with RegistryClient() as client:
            await client.push_oci_layout(str(archive),
                                         parse_reference(f"{host}/library/busybox:extra"))
    asyncio.run(push())
    name = two.run_pod(two.a, "busybox:extra", "IfNotPresent")
    two.wait_running(name)
    assert re.search(rf"of docker.io/library/busybox:extra served by "
                     rf"{re.escape(two.registry_url)}", two.log(two.a))


def test_registry_demo_redirects_a_running_node(two, demo_registry, tmp_path):
    """`podling image registry-demo` writes A's registries.yaml while A runs: A's next pull
    goes to that registry, without a restart."""
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    for name in ("busybox.tar", "nginx.tar"):  # built by the demo_registry fixture
        shutil.copy(os.path.join(os.path.dirname(demo_registry), "demo", name), demo_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "podling", "image", "--data-dir", two.a["data_dir"],
         "registry-demo", str(demo_dir), "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            m = re.match(r"registry (http://127\.0\.0\.1:\d+) \(pid", line)
            if m:
                url = m.group(1)
                break
        assert url, "registry-demo did not start"
        wait_until(lambda: f"reloaded: docker.io -> {url} only" in two.log(two.a),
                   timeout=20, interval=0.3, message="registry-demo's file reloaded")
        name = two.run_pod(two.a, "nginx", "Always")
        two.wait_running(name)
        assert re.search(rf"docker.io/library/nginx:latest is up to date \(sha256:\w+, "
                         rf"resolved by {re.escape(url)}\)", two.log(two.a))
    finally:
        terminate(process)
