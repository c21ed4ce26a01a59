#!/usr/bin/env bash
# The test command (README, .ci/run): set up what is missing, build, run every ava test.
# Prints a closing line "ava: N passed, N failed[, N skipped]" and exits with ava's status.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
log=$(mktemp)
npx --no-install ava "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -oE "[0-9]+ tests? passed" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
failed=$(grep -oE "[0-9]+ tests? failed" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
skipped=$(grep -oE "[0-9]+ tests? skipped" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
[ "$status" -ne 0 ] && [ "$failed" = 0 ] && failed=1
rm -f "$log"
echo "ava: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
