"""Fixtures for the e2e tests; the helpers are in :mod:`podling_e2e`."""

from __future__ import annotations

import shutil

import pytest

from podling_e2e import start_server, wait_for


@pytest.fixture
def server(tmp_path):
    """A fresh server per test (SQLite in its own data dir)."""
    srv = start_server(str(tmp_path / "data"), str(tmp_path / "home"))
    yield srv
    srv.kill()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for a module of read-mostly tests (use unique names per test)."""
    base = tmp_path_factory.mktemp("podling")
    srv = start_server(str(base / "data"), str(base / "home"))
    yield srv
    srv.kill()


@pytest.fixture(scope="session")
def e2e_start_server():
    """:func:`start_server` for fixtures in sub-directories."""
    return start_server


@pytest.fixture(scope="session")
def wait():
    """:func:`wait_for` as a fixture."""
    return wait_for
