#!/usr/bin/env bash
# `make test` N times in a row (default 3) while two CPU-bound processes run beside it on the same cores:
# the suite must stay green on a busy machine, not only on an idle one. Logs go to var/ (git-ignored);
# the last line is the figure: how many runs passed, and their wall times.
set -u
cd "$(dirname "$0")/.."
runs=${1:-3}
mkdir -p var
python3 -c 'while True: pass' & burner1=$!
python3 -c 'while True: pass' & burner2=$!
trap 'kill "$burner1" "$burner2" 2>/dev/null' EXIT
passed=0
times=()
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if make test >"var/suite-under-load-$i.log" 2>&1; then
    result=passed
    passed=$((passed + 1))
  else
    result=FAILED
  fi
  took=$(($(date +%s) - start))
  times+=("${took}s")
  echo "run $i: $result in ${took} s ($(tail -n 1 "var/suite-under-load-$i.log"))"
done
echo "suite_under_load: passed=$passed/$runs wall=${times[*]} (two CPU burners beside it on $(nproc) cores)"
[ "$passed" -eq "$runs" ]
