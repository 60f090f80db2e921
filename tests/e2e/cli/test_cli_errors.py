"""Each error of the command line the issue names ends as one line on stderr and a
documented exit status (1: could not run, 2: usage), never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from podling.cli import preflight
from podling.cli.errors import CliError
from podling.network import cni_config
from podling.util import mounts

REPO = str(Path(__file__).resolve().parents[3])
AGENT = ["agent", "--server", "https://127.0.0.1:1", "--node-name", "cli-err"]


def podling(args, tmp_path, path=None, **env):
    """Run podling with no config file but the test's own (never /etc/podling)."""
    config = tmp_path / "config.yaml"
    config.touch()
    out = subprocess.run([sys.executable, "-m", "podling", *args], capture_output=True,
                         text=True, timeout=120, cwd=REPO,
                         env={"PATH": path or os.environ["PATH"], "PYTHONPATH": REPO,
                              "PODLING_CONFIG": str(config), **env})
    assert "Traceback" not in out.stderr, out.stderr
    return out


def last_line(out) -> str:
    return out.stderr.strip().splitlines()[-1]


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = podling(["server", "--disable-agent", "--data-dir", str(tmp_path / "d"),
                       "--port", str(port)], tmp_path)
    assert out.returncode == 1
    assert last_line(out) == (f"podling server: cannot listen on 127.0.0.1:{port}: Address "
                              "already in use (is another podling or API server running? "
                              "choose --port)")


def test_missing_token_file(tmp_path):
    missing = tmp_path / "no-token"
    out = podling([*AGENT, "--token-file", str(missing)], tmp_path)
    assert (out.returncode, out.stderr) == (
        1, f"podling agent: cannot read token file {missing}: No such file or directory\n")


def test_unreadable_token_file(tmp_path):
    out = podling([*AGENT, "--token-file", str(tmp_path)], tmp_path)  # a directory
    assert (out.returncode, out.stderr) == (
        1, f"podling agent: cannot read token file {tmp_path}: Is a directory\n")


def test_no_token_at_all(tmp_path):
    out = podling(AGENT, tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("podling agent: a token is required: --token or --token-file")


@pytest.mark.parametrize("args, env, expected", [
    (["server", "--port", "http"], {}, "podling server: argument --port/--https-listen-port: "
     "invalid port 'http' (see podling server --help)"),
    (["server", "--cluster-cidr", "10.1.2.0/25"], {}, "podling server: argument "
     "--cluster-cidr: 10.1.2.0/25 is smaller than a /24 (see podling server --help)"),
    (["server"], {"PODLING_WATCH_BOOKMARK_INTERVAL": "soon"},
     "podling: PODLING_WATCH_BOOKMARK_INTERVAL: invalid duration 'soon' (e.g. 40s, 1m)"),
])
def test_bad_flag_value(tmp_path, args, env, expected):
    out = podling(args, tmp_path, **env)
    assert (out.returncode, out.stderr) == (2, expected + "\n")


ETCD_SERVER = ["server", "--disable-agent", "--port", "0"]


@pytest.mark.parametrize("args, expected", [
    (["--datastore", "etcd"],
     "podling server: --datastore etcd needs --etcd-endpoints URL[,URL...]"),
    (["--etcd-endpoints", "http://127.0.0.1:2379"],
     "podling server: --etcd-endpoints needs --datastore etcd"),
    (["--datastore", "etcd", "--etcd-endpoints", "127.0.0.1:2379"],
     "podling server: argument --etcd-endpoints: expected http(s)://host:port, got "
     "'127.0.0.1:2379' (see podling server --help)"),
    (["--datastore", "etcd", "--etcd-endpoints", "https://127.0.0.1:2379",
      "--etcd-cafile", "/nonexistent/ca.crt"],
     "podling server: --etcd-cafile: cannot read /nonexistent/ca.crt"),
    (["--token", "s3cret"], "podling server: --token and --server are for servers that "
     "share etcd (--datastore etcd)"),
    (["--server", "https://127.0.0.1:6443"], "podling server: --token and --server are for "
     "servers that share etcd (--datastore etcd)"),
    (["--datastore", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--server",
      "https://127.0.0.1:6443"], "podling server: --server needs the server token (--token "
     "or --token-file)"),
])
def test_bad_etcd_flags(tmp_path, args, expected):
    out = podling([*ETCD_SERVER, "--data-dir", str(tmp_path / "d"), *args], tmp_path)
    assert (out.returncode, out.stderr) == (2, expected + "\n")


def test_etcd_that_does_not_answer(tmp_path):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = podling([*ETCD_SERVER, "--data-dir", str(tmp_path / "d"), "--datastore", "etcd",
                   "--etcd-endpoints", f"http://127.0.0.1:{port}"], tmp_path)
    assert out.returncode == 1
    assert last_line(out).startswith(
        f"podling server: cannot open the etcd datastore: etcd: no endpoint answered: "
        f"http://127.0.0.1:{port}: ")


@pytest.fixture
def overlay_dir(tmp_path):
    """A directory on an overlayfs, which cannot hold overlay upper dirs itself."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    layers = tmp_path / "ov"
    for name in ("lower", "upper", "work", "merged"):
        (layers / name).mkdir(parents=True)
    mounts.mount("overlay", str(layers / "merged"), "overlay", 0,
                 f"lowerdir={layers}/lower,upperdir={layers}/upper,workdir={layers}/work")
    try:
        yield layers / "merged"
    finally:
        mounts.unmount(str(layers / "merged"), lazy=False)


def test_data_dir_without_overlay_support(tmp_path, overlay_dir):
    data = overlay_dir / "data"
    out = podling([*AGENT, "--token", "x", "--data-dir", str(data)], tmp_path)
    assert out.returncode == 1
    assert out.stderr == (f"podling: data dir {data} is on a overlay filesystem where "
                          "overlayfs cannot work (Invalid argument): choose a --data-dir on "
                          "ext4, xfs or btrfs\n")
    assert os.listdir(data / "agent") == []  # the probe cleaned up after itself


def test_missing_binaries(tmp_path):
    """PATH without /usr/bin: conmon and catatonit (Debian puts them there) are missing;
    runc and iptables are still found in /usr/sbin, as the runtime finds them."""
    if not all(os.path.exists(f"/usr/sbin/{b}") for b in ("runc", "iptables")):
        pytest.skip("needs runc and iptables in /usr/sbin (Debian)")
    empty = tmp_path / "bin"
    empty.mkdir()
    out = podling(["server", "--data-dir", str(tmp_path / "d"), "--port", "0"], tmp_path,
                  path=str(empty))
    assert (out.returncode, out.stderr) == (
        1, "podling: missing conmon, catatonit: apt-get install catatonit conmon (or run the "
        "server with --disable-agent)\n")
    assert not (tmp_path / "d").exists()  # nothing started
    out = podling([*AGENT, "--token", "x"], tmp_path, path=str(empty))
    assert (out.returncode, out.stderr) == (
        1, "podling: missing conmon, catatonit: apt-get install catatonit conmon\n")


def test_missing_cni_plugins(tmp_path, monkeypatch):
    plugins = tmp_path / "cni"
    plugins.mkdir()
    (plugins / "bridge").write_text("#!/bin/sh\n")
    (plugins / "bridge").chmod(0o755)
    monkeypatch.setattr(cni_config, "PLUGIN_DIR_CANDIDATES", (str(plugins),))
    missing = preflight.missing_binaries(path=os.environ["PATH"])
    assert {k: v for k, v in missing.items() if k.startswith(str(plugins))} == {
        f"{plugins}/host-local": "containernetworking-plugins",
        f"{plugins}/portmap": "containernetworking-plugins"}
    with pytest.raises(CliError) as caught:
        preflight.check_binaries()
    assert "apt-get install containernetworking-plugins" in str(caught.value)


def test_node_api_port_in_use(tmp_path, server):
    """`podling agent` against a real server (admin token), its node API port taken."""
    node = ["--node-name", "cli-busy", "--data-dir", str(tmp_path / "agent"), "--run-dir",
            str(tmp_path / "run"), "--bridge-name", "pdclibusy0"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            out = podling(["agent", "--server", server.url, "--token-file",
                           os.path.join(server.data_dir, "server", "admin.token"),
                           "--ca-file", server.ca_file, "--node-api-address", "127.0.0.1",
                           "--node-api-port", str(port), *node], tmp_path)
        finally:
            podling(["purge", *node], tmp_path)
    assert out.returncode == 1
    assert last_line(out) == (f"podling agent: cannot listen on 127.0.0.1:{port} (the node "
                              "API): Address already in use (choose --node-api-port)")
