#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds the normal and the
# AddressSanitizer+UBSan trees, runs every ctest test in both (unit,
# integration; the jepsen-like short run once, in the normal tree), and
# ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh --asan || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
count() { # $1 = log of a ctest run
  local line p t
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -1)
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    return
  fi
  t=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
  p=$(echo "$line" | sed -E 's/.*, ([0-9]+) tests? failed.*/\1/')
  passed=$((passed + t - p))
  failed=$((failed + p))
}

logs=$(mktemp -d)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The jepsen-like suite (label "jepsen": checker self-tests and a short
# fault-injection run in network namespaces) runs once, against the normal
# build; the sanitizer build runs everything else.
for tree in build build-asan; do
  echo "== ctest in $tree"
  exclude=()
  [ "$tree" = build-asan ] && exclude=(-LE jepsen)
  (cd "$tree" && ctest --output-on-failure -j 2 --timeout 900 "${exclude[@]}") 2>&1 | tee "$logs/$tree.log"
  count "$logs/$tree.log"
done

rm -rf "$logs"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
