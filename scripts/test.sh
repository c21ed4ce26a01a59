#!/usr/bin/env bash
# The test command (README, .ci/run): set up what is missing, build, check the house rules (imports point one
# way, no copy-paste, file sizes), run every ava test.
# Prints a closing line "ava: N passed, N failed[, N skipped]" and exits with ava's status (1 if a house rule
# is broken).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
house=0
for check in check:deps check:dupes check:layout; do
  out=$(npm run -s "$check" 2>&1) || { echo "$out"; echo "house rules: npm run $check failed" >&2; house=1; }
done
[ "$house" = 0 ] && echo "house rules: check:deps, check:dupes, check:layout passed"
log=$(mktemp)
npx --no-install ava "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -oE "[0-9]+ tests? passed" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
failed=$(grep -oE "[0-9]+ tests? failed" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
skipped=$(grep -oE "[0-9]+ tests? skipped" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
[ "$status" -ne 0 ] && [ "$failed" = 0 ] && failed=1
rm -f "$log"
echo "ava: ${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$status" = 0 ] && [ "$house" != 0 ] && status=1
exit "$status"
