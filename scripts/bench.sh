#!/usr/bin/env bash
# Builds fedpp's benchmarks (Release, -O3) in build-bench/, runs every one of them with
# OMP_NUM_THREADS=2, writes one JSON per benchmark under benchmarks/results/ and prints the
# summaries. See docs/performance.md.
#
# Usage: scripts/bench.sh [flags passed to every benchmark, e.g. --reps 31]
# Environment:
#   OMP_NUM_THREADS   threads for the benchmarks (default 2)
#   BENCH_BUILD_DIR   build directory (default <repo>/build-bench)
#   BENCH_RESULTS     where the JSON files go (default <repo>/benchmarks/results)
#   BENCH_FILTER      only run benchmarks whose name contains this text
#   BENCH_MAX_LOAD    if set, wait (up to 10 min) until the 1-minute load average is below it
#   JOBS              parallel build jobs (default 2)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-bench}
results=${BENCH_RESULTS:-$root/benchmarks/results}
threads=${OMP_NUM_THREADS:-2}
jobs=${JOBS:-2}

configure() {
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DFEDPP_BUILD_BENCHMARKS=ON -DFEDPP_BUILD_TESTS=OFF -DFEDPP_BUILD_EXAMPLES=OFF >/dev/null
}

echo "== configure and build ($build, Release)"
if ! configure; then
  if [[ -x $root/scripts/setup.sh ]]; then
    echo "configure failed; running scripts/setup.sh to install the dependencies, then retrying"
    "$root/scripts/setup.sh"
    configure
  else
    echo "configure failed (are Eigen 3.4, CMake >= 3.25 and g++ >= 12 installed?)" >&2
    exit 1
  fi
fi
cmake --build "$build" -j "$jobs"

mapfile -t benches < <(find "$build/benchmarks" -maxdepth 1 -type f -name 'bench_*' -perm -u+x | sort)
if [[ ${#benches[@]} -eq 0 ]]; then
  echo "no benchmark executables found in $build/benchmarks" >&2
  exit 1
fi

if [[ -n ${BENCH_MAX_LOAD:-} ]]; then
  for _ in $(seq 60); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load" -v m="$BENCH_MAX_LOAD" 'BEGIN { exit !(l < m) }' && break
    echo "load average $load >= $BENCH_MAX_LOAD; waiting 10 s"
    sleep 10
  done
fi

mkdir -p "$results"
echo "== running ${#benches[@]} benchmark(s), OMP_NUM_THREADS=$threads; load: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
summary=()
for exe in "${benches[@]}"; do
  name=$(basename "$exe")
  [[ -n ${BENCH_FILTER:-} && $name != *"$BENCH_FILTER"* ]] && continue
  json="$results/$name.json"
  echo
  if OMP_NUM_THREADS=$threads "$exe" --json "$json" "$@"; then
    if grep -q '"pass": true' "$json"; then verdict=PASS; else verdict="MISSED TARGET"; fi
  else
    verdict="ERROR"
    status=1
  fi
  summary+=("$(printf '%-28s %s  (%s)' "$name" "$verdict" "${json#"$root"/}")")
done

echo
echo "== summary (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
if [[ ${#summary[@]} -eq 0 ]]; then
  echo "no benchmark matched BENCH_FILTER='${BENCH_FILTER:-}'"
  exit 1
fi
printf '%s\n' "${summary[@]}"
exit $status
