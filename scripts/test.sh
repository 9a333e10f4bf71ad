#!/usr/bin/env bash
# Full check of fedpp, as run by CI (.ci/run):
#   1. scripts/setup.sh (dependencies);
#   2. Release build in build/ with tests, examples and benchmarks (-Werror), then ctest;
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/ (unit tests only, -O0 -g1;
#      the libFuzzer target and the package and compile-fail tests run in the Release tree only),
#      then ctest;
#   4. ThreadSanitizer build in build-tsan/ of the runtime and network tests (tests/unit/runtime,
#      tests/unit/net; -O1 -g1, no OpenMP), then ctest on them;
#   5. only with FEDPP_MUTANTS=1: scripts/mutants.sh (every mutant of tests/mutants/*.txt killed).
# Every phase runs even if an earlier one failed (a failed build skips its own ctest); a
# summary with the time of each phase is printed at the end, and the exit status is nonzero if
# anything failed.
#
# Environment:
#   FEDPP_JOBS=N            build and test parallelism (default: nproc)
#   FEDPP_WERROR=0          do not add -Werror to the Release build (default 1)
#   FEDPP_SKIP_SANITIZE=1   skip the sanitizer builds (ASan+UBSan and TSan)
#   FEDPP_SKIP_TSAN=1       skip only the TSan build
#   FEDPP_MUTANTS=1         also run the mutation tier (scripts/mutants.sh, about an hour on 2 cores)
#   OMP_WAIT_POLICY         OpenMP wait policy for the tests (default passive, see below)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

jobs="${FEDPP_JOBS:-$(nproc)}"

# ctest runs `jobs` test processes at once, each with OpenMP's default thread count (nproc), so the
# machine is oversubscribed; libgomp's default (active) wait policy then has idle threads spin at
# every barrier, and tests that open many small parallel regions (e.g. compressors/error_feedback
# "EF-SignSGD ...", Release, on a busy 2-core machine: 43 s and 14 s of CPU, against 5 s and 0.6 s
# passive) crawl. Passive waiting sleeps instead; thread counts and code paths are unchanged.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
werror=ON
[[ "${FEDPP_WERROR:-1}" == "0" ]] && werror=OFF

summary=()
failed=0
start_all=$SECONDS

# phase NAME COMMAND...: runs COMMAND, records its time and status; returns its status.
phase() {
  local name="$1"
  shift
  echo
  echo "==== test.sh: ${name}"
  echo "+ $*"
  local t0=$SECONDS rc=0
  "$@" || rc=$?
  local dt=$((SECONDS - t0))
  if ((rc == 0)); then
    summary+=("$(printf '%-34s %5ds  ok' "$name" "$dt")")
  else
    summary+=("$(printf '%-34s %5ds  FAILED (exit %d)' "$name" "$dt" "$rc")")
    failed=1
  fi
  return "$rc"
}

skip() {
  summary+=("$(printf '%-34s %6s  skipped (%s)' "$1" "-" "$2")")
}

phase "setup (dependencies)" "$root/scripts/setup.sh" || {
  echo "test.sh: setup failed; cannot continue" >&2
  exit 1
}

# ---- Release: tests, examples, benchmarks ---------------------------------------------------
if phase "release: configure" cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release \
      -DFEDPP_BUILD_TESTS=ON -DFEDPP_BUILD_EXAMPLES=ON -DFEDPP_BUILD_BENCHMARKS=ON \
      -DFEDPP_CHECK_HEADERS=ON -DFEDPP_INSTALL=ON -DFEDPP_SANITIZE= -DFEDPP_WARNINGS_AS_ERRORS="$werror"; then
  if phase "release: build" cmake --build "$root/build" --parallel "$jobs"; then
    phase "release: ctest" ctest --test-dir "$root/build" --output-on-failure -j "$jobs" --timeout 900 || true
  else
    skip "release: ctest" "build failed"
  fi
else
  skip "release: build" "configure failed"
  skip "release: ctest" "configure failed"
fi

# ---- ASan + UBSan: tests only ----------------------------------------------------------------
if [[ "${FEDPP_SKIP_SANITIZE:-0}" == "1" ]]; then
  skip "asan+ubsan" "FEDPP_SKIP_SANITIZE=1"
else
  # The build runs the test binaries too (catch_discover_tests), so the options apply to both.
  # -O0 -g1: with ASan+UBSan, -O1 makes the test files compile ~2x slower (-g1 or -g0 alike), which
  # only pays off for the few long-running ones that tests/CMakeLists.txt builds at -O1
  # (fedpp_sanitize_o1_tests); -g1 keeps the line tables that stack traces need.
  # FEDPP_BUILD_FUZZ=OFF: the libFuzzer target is built by clang with its own fixed flags
  # (ASan+UBSan included) whatever the build type, so the Release tree already builds and runs it.
  export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  if phase "asan+ubsan: configure" cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DFEDPP_SANITIZE=address,undefined \
        -DFEDPP_BUILD_TESTS=ON -DFEDPP_BUILD_EXAMPLES=OFF -DFEDPP_BUILD_BENCHMARKS=OFF \
        -DFEDPP_CHECK_HEADERS=OFF -DFEDPP_INSTALL=OFF -DFEDPP_BUILD_FUZZ=OFF -DFEDPP_WARNINGS_AS_ERRORS=OFF; then
    if phase "asan+ubsan: build" cmake --build "$root/build-asan" --parallel "$jobs"; then
      # Package and compile-fail tests do not depend on the sanitizers; the Release run covers them.
      phase "asan+ubsan: ctest" ctest --test-dir "$root/build-asan" --output-on-failure -j "$jobs" \
        --timeout 1500 --label-exclude '^(package|compile_fail)$' || true
    else
      skip "asan+ubsan: ctest" "build failed"
    fi
  else
    skip "asan+ubsan: build" "configure failed"
    skip "asan+ubsan: ctest" "configure failed"
  fi
fi

# ---- TSan: the threaded runtime and the network code ----------------------------------------
# ThreadSanitizer build of tests/unit/runtime and tests/unit/net only (the code with threads of
# its own: thread pool, in-process transport, TCP transport and client), without OpenMP (libgomp is
# not TSan-instrumented, so its barriers would be reported as races).
if [[ "${FEDPP_SKIP_SANITIZE:-0}" == "1" || "${FEDPP_SKIP_TSAN:-0}" == "1" ]]; then
  skip "tsan" "FEDPP_SKIP_SANITIZE=1 or FEDPP_SKIP_TSAN=1"
else
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
  if phase "tsan: configure" cmake -S "$root" -B "$root/build-tsan" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DFEDPP_SANITIZE=thread -DFEDPP_USE_OPENMP=OFF \
        -DFEDPP_BUILD_TESTS=ON -DFEDPP_BUILD_EXAMPLES=OFF -DFEDPP_BUILD_BENCHMARKS=OFF \
        -DFEDPP_CHECK_HEADERS=OFF -DFEDPP_INSTALL=OFF -DFEDPP_BUILD_FUZZ=OFF -DFEDPP_WARNINGS_AS_ERRORS=OFF; then
    if phase "tsan: build" cmake --build "$root/build-tsan" --parallel "$jobs" --target test_runtime test_net; then
      phase "tsan: ctest" ctest --test-dir "$root/build-tsan" --output-on-failure -j "$jobs" --timeout 900 \
        -R '^(runtime|net):' || true
    else
      skip "tsan: ctest" "build failed"
    fi
  else
    skip "tsan: build" "configure failed"
    skip "tsan: ctest" "configure failed"
  fi
fi

# ---- Mutation testing: the expensive tier, only when asked ----------------------------------
if [[ "${FEDPP_MUTANTS:-0}" == "1" ]]; then
  phase "mutants (scripts/mutants.sh)" "$root/scripts/mutants.sh" --jobs "$jobs" || true
else
  skip "mutants (scripts/mutants.sh)" "expensive tier: FEDPP_MUTANTS=1"
fi

echo
echo "==== test.sh summary (FEDPP_JOBS=${jobs})"
printf '%s\n' "${summary[@]}"
printf '%-34s %5ds\n' "total" "$((SECONDS - start_all))"
if ((failed)); then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all passed"
