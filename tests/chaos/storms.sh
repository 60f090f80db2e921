#!/bin/sh
# The long storm campaigns (tests/unit/apiserver/test_storms.py with big sizes):
#   tests/chaos/storms.sh [UPDATES] [CHURN_WRITES]    # default 10000 and 1000000
# a conflict storm of UPDATES concurrent updates on one object (one winner per version),
# then CHURN_WRITES creates, updates and deletes followed by a watch (every write seen
# once, in order). Run from anywhere; prints pytest's summary and the time taken.
set -eu
cd "$(dirname "$0")/../.."
updates="${1:-10000}"
writes="${2:-1000000}"
start=$(date +%s)
PODLING_STORM_UPDATES="$updates" PODLING_CHURN_WRITES="$writes" .venv/bin/pytest -q -s \
    -p no:cacheprovider tests/unit/apiserver/test_storms.py
echo "storms: $updates concurrent updates, $writes churn writes, $(( $(date +%s) - start )) s"
