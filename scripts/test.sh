#!/usr/bin/env bash
# Runs the test suites, each in the environment of the project it tests (PyFlink and PySpark
# cannot share one). Extra arguments go to every pytest run (e.g. -m unit, -k name, -x).
set -uo pipefail
cd "$(dirname "$0")/.."
VENVS=$PWD/.venvs

# suite folder(s) : environment
SUITES=(
  "tests/contract tests/tools tests/infra tests/observability:tools"
  "tests/speed:speed"
  "tests/batch:batch"
  "tests/serving:serving"
  "tests/k8s:tools"
  "tests/e2e:serving"
  "tests/faults/serving:serving"
  "tests/faults/pipeline:serving"
  "tests/cluster:serving"
  "tests/bench:tools"
)

failed=0
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
n=0
for entry in "${SUITES[@]}"; do
  dirs=${entry%%:*}; env=${entry##*:}
  existing=()
  for d in $dirs; do [ -d "$d" ] && ls "$d"/test_*.py >/dev/null 2>&1 && existing+=("$d"); done
  ((${#existing[@]})) || continue
  printf '\n\033[1m=== %s (env: %s)\033[0m\n' "${existing[*]}" "$env"
  n=$((n + 1))
  # The slowest tests of each suite are listed at its end: where `make test`'s time goes.
  "$VENVS/$env/bin/python" -m pytest "${existing[@]}" --junitxml="$results/$n.xml" --durations=8 --durations-min=10 "$@"
  rc=$?
  # 5 = no tests collected for this selection (e.g. -m unit on an integration-only folder).
  if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then failed=1; fi
done

# One closing line for the whole run, summed over the suites.
"$VENVS/tools/bin/python" - "$results" <<'PY'
import sys, pathlib, xml.etree.ElementTree as ET
t = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for f in pathlib.Path(sys.argv[1]).glob("*.xml"):
    for suite in ET.parse(f).getroot().iter("testsuite"):
        for k in t:
            t[k] += int(suite.get(k, 0))
failed = t["failures"] + t["errors"]
print(f"\nall suites: {t['tests'] - failed - t['skipped']} passed, {failed} failed, {t['skipped']} skipped")
PY
exit $failed
