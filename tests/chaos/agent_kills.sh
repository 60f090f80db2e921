#!/bin/sh
# The long agent kill campaign (tests/e2e/agent/test_agent_kills.py with many kills), as root:
#   tests/chaos/agent_kills.sh [KILLS]     # default 500
# kill -9 of `podling agent` while pods are created, deleted and run to completion, then a
# restart on the same dirs: no container lost or doubled, every pod's status right, no
# leaked runc state, conmon, IP, veth or mount; a bare node once every pod is deleted.
set -eu
cd "$(dirname "$0")/../.."
kills="${1:-500}"
PODLING_AGENT_KILLS="$kills" .venv/bin/pytest -q -s -p no:cacheprovider \
    tests/e2e/agent/test_agent_kills.py
