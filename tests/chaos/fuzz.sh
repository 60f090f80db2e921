#!/bin/sh
# The long fuzzing campaign: every hypothesis property of the fuzz tests with many new
# examples each (make test runs the same properties with 200 fixed ones).
#   tests/chaos/fuzz.sh [EXAMPLES]      # default 5000 per property; run from the repository
# Prints pytest's summary; a failure shows the smallest input that breaks a property.
set -eu
cd "$(dirname "$0")/../.."
examples="${1:-5000}"
start=$(date +%s)
PODLING_FUZZ_EXAMPLES="$examples" PODLING_FUZZ_RANDOM=1 .venv/bin/pytest -q -p no:cacheprovider \
    tests/unit/api/test_fuzz_parsers.py tests/unit/apiserver/test_fuzz_api.py
echo "fuzz campaign: $examples examples per property, $(( $(date +%s) - start )) s"
