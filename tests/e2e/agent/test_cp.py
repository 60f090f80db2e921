"""``kubectl cp`` of a directory tree into a container and back (tar over exec stdin/stdout,
in the container's busybox tar): every file byte-identical, names with spaces, empty files
and directories, a binary file with every byte value, nesting."""

from __future__ import annotations

import os

import pytest

from streams_util import (SLEEPER, SPDY_EXEC, WEBSOCKET, Pods, busybox, file_digests, kubectl,
                          pod, tag)

TRANSPORTS = [pytest.param(WEBSOCKET, id="websocket"), pytest.param(SPDY_EXEC, id="spdy")]


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    name = f"cp-{t}"
    p = Pods(cluster, [pod(name, cluster.node, [busybox("main", SLEEPER)])])
    p.name = name
    p.tag = t
    return p


def make_tree(root: str) -> None:
    def write(rel: str, data: bytes) -> None:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    write("top.txt", b"top level\n")
    write("a/b/c/deep.txt", b"deep\n" * 1000)
    write("a/sibling.txt", b"sibling without newline")
    write("binary.bin", bytes(range(256)) * 64 + os.urandom(300 * 1024))
    write("empty", b"")
    write("with space.txt", b"a file name with a space\n")
    write("dir with space/inner file.txt", b"inside a spaced dir\n")
    write("a/b/.hidden", b"dot file\n")
    os.makedirs(os.path.join(root, "empty-dir"))


def in_container_digests(pods, path: str, env) -> dict[str, str]:
    """relative path -> sha256 (files) / 'dir' (directories), computed in the container."""
    script = (f'cd "{path}" && find . -mindepth 1 | while IFS= read -r f; do '
              'if [ -d "$f" ]; then echo "dir ${f#./}"; '
              'else echo "$(sha256sum < "$f" | cut -d" " -f1) ${f#./}"; fi; done')
    out = kubectl(pods.cluster, "exec", pods.name, "--", "sh", "-c", script, extra_env=env)
    assert out.returncode == 0, out.stderr.decode()
    result = {}
    for line in out.stdout.decode().splitlines():
        digest, rel = line.split(" ", 1)
        result[rel] = digest
    return result


@pytest.mark.parametrize("env", TRANSPORTS)
def test_cp_directory_tree_in_and_back(pods, env, tmp_path):
    pods.wait_running(pods.name)
    src = str(tmp_path / "src")
    make_tree(src)
    expected = file_digests(src)
    assert len(expected) >= 12

    dest = f"/tmp/cp-in-{pods.tag}-{'spdy' if env else 'ws'}"
    up = kubectl(pods.cluster, "cp", src, f"{pods.name}:{dest}", "-c", "main", extra_env=env)
    assert up.returncode == 0, up.stderr.decode()
    assert in_container_digests(pods, dest, env) == expected

    back = str(tmp_path / "back")
    down = kubectl(pods.cluster, "cp", f"{pods.name}:{dest}", back, "-c", "main",
                   extra_env=env)
    assert down.returncode == 0, down.stderr.decode()
    assert file_digests(back) == expected


def test_cp_single_file_to_a_missing_pod_fails(pods, tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("x")
    out = kubectl(pods.cluster, "cp", str(f), f"no-such-pod-{pods.tag}:/tmp/one.txt")
    assert out.returncode != 0
    assert f'pods "no-such-pod-{pods.tag}" not found' in out.stderr.decode(), out.stderr
