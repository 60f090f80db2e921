"""``@nodes`` in registries.yaml, the default configuration, and hot reload of the file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from podling.images.config import (DEFAULT_REGISTRIES, NODES_KEYWORD, RegistriesConfig,
                                   load_registries)
from podling.images.config_watch import RegistriesWatch
from podling.images.refs import parse_reference

NODES = ("https://127.0.0.1:10250", "https://10.0.0.2:10250")


def _urls(cfg: RegistriesConfig, ref: str) -> list[str]:
    return [e.api_url("") for e in cfg.endpoints(parse_reference(ref))]


def test_default_lists_the_nodes_before_docker_hub(tmp_path: Path) -> None:
    cfg = load_registries(tmp_path / "absent.yaml")
    assert cfg == RegistriesConfig.from_dict(DEFAULT_REGISTRIES) and cfg.uses_nodes()
    # no agent filled in the nodes (``podling image pull``): upstream only
    assert _urls(cfg, "busybox") == ["https://registry-1.docker.io/v2/"]
    eps = cfg.with_nodes(NODES, "ip1.t").endpoints(parse_reference("busybox"))
    assert [e.api_url("") for e in eps] == [f"{u}/v2/" for u in NODES] + [
        "https://registry-1.docker.io/v2/"]
    node = eps[0]
    assert node.node and node.mirror and node.repository == "docker.io/library/busybox"
    assert node.auth is not None and node.auth.registry_token == "ip1.t"
    assert node.tls.insecure_skip_verify
    assert eps[-1].repository == "library/busybox" and not eps[-1].node
    # other registries are not mirrored by default
    assert _urls(cfg.with_nodes(NODES, "t"), "quay.io/a/b") == ["https://quay.io/v2/"]


def test_nodes_keyword_in_an_explicit_file_keeps_its_place_and_rewrites_skip_it() -> None:
    cfg = RegistriesConfig.from_dict({"mirrors": {"docker.io": {
        "endpoint": ["http://127.0.0.1:5000", NODES_KEYWORD],
        "rewrite": {"^library/(.*)": "mirrored/$1"}, "disable_default_endpoint": True}}})
    eps = cfg.with_nodes(NODES[:1], "t").endpoints(parse_reference("nginx"))
    assert [(e.api_url(""), e.repository) for e in eps] == [
        ("http://127.0.0.1:5000/v2/", "mirrored/nginx"),
        ("https://127.0.0.1:10250/v2/", "docker.io/library/nginx")]
    assert "@nodes" in cfg.describe() and "only" in cfg.describe()


def test_explicit_file_without_the_keyword_never_asks_the_nodes() -> None:
    cfg = RegistriesConfig.from_dict({"mirrors": {"docker.io": {
        "endpoint": ["http://127.0.0.1:5000"]}}})
    assert not cfg.uses_nodes()
    assert _urls(cfg.with_nodes(NODES, "t"), "nginx") == [
        "http://127.0.0.1:5000/v2/", "https://registry-1.docker.io/v2/"]


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a new inode: the change is seen even within one mtime tick


def test_watch_reloads_keeps_the_last_good_config_and_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "registries.yaml"
    watch = RegistriesWatch(str(path))
    assert watch.config == RegistriesConfig.from_dict(DEFAULT_REGISTRIES)
    assert watch.check() is False  # unchanged: nothing read
    caplog.set_level(logging.INFO, logger="podling.images.config_watch")

    _write(path, 'mirrors: {docker.io: {endpoint: ["http://127.0.0.1:5000"]}}\n')
    assert watch.check() is True
    assert _urls(watch.config, "nginx")[0] == "http://127.0.0.1:5000/v2/"
    assert "reloaded: docker.io -> http://127.0.0.1:5000, then upstream" in caplog.text

    good = watch.config
    caplog.clear()
    _write(path, "mirrors: [unclosed\n")
    assert watch.check() is False and watch.config is good
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "keeping the last good" in warnings[0].getMessage()
    assert "not valid YAML" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    caplog.clear()
    assert watch.check() is False and not caplog.records  # the broken file is not re-read

    _write(path, 'mirrors: {docker.io: {endpoint: ["ftp://x"]}}\n')  # valid YAML, bad field
    assert watch.check() is False and watch.config is good
    assert "invalid registry endpoint" in caplog.text

    os.unlink(path)  # removed: back to the default
    assert watch.check() is True
    assert watch.config == RegistriesConfig.from_dict(DEFAULT_REGISTRIES)


async def test_watch_run_polls(tmp_path: Path) -> None:
    import asyncio
    path = tmp_path / "registries.yaml"
    watch = RegistriesWatch(str(path))
    before = watch.generation
    task = asyncio.create_task(watch.run(interval=0.01))
    try:
        _write(path, "mirrors: {}\n")
        for _ in range(500):
            if watch.generation != before:
                break
            await asyncio.sleep(0.01)
        assert watch.config == RegistriesConfig()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_file_broken_from_the_start_fails_pulls_until_fixed(tmp_path: Path) -> None:
    from podling.images.config import InvalidRegistryConfig
    path = tmp_path / "registries.yaml"
    path.write_text("mirrors: [unclosed\n")
    watch = RegistriesWatch(str(path))
    with pytest.raises(InvalidRegistryConfig, match="no registry is used until it is fixed"):
        watch.current()  # no last good configuration: never fall back to upstream
    _write(path, 'mirrors: {docker.io: {endpoint: ["http://127.0.0.1:5000"]}}\n')
    assert watch.check() is True
    assert _urls(watch.current(), "nginx")[0] == "http://127.0.0.1:5000/v2/"
    _write(path, "mirrors: [unclosed again\n")
    assert watch.check() is False
    assert _urls(watch.current(), "nginx")[0] == "http://127.0.0.1:5000/v2/"  # last good
