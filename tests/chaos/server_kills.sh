#!/bin/sh
# The long API server kill campaign (tests/e2e/test_server_kills.py with many kills):
#   tests/chaos/server_kills.sh [KILLS]     # default 200
# kill -9 of the server under four concurrent writers, then a restart on the same data dir:
# no acknowledged write lost, resourceVersions never back, resumed watches without gaps.
set -eu
cd "$(dirname "$0")/../.."
kills="${1:-200}"
PODLING_SERVER_KILLS="$kills" .venv/bin/pytest -q -s -p no:cacheprovider \
    tests/e2e/test_server_kills.py
