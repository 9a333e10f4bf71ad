# Shared by the process-level tests of fedpp_server and fedpp_client (sourced, not run).
# Each test is run by ctest as: bash <test>.sh SERVER_EXE CLIENT_EXE WORK_DIR
# It starts every process under `timeout` (so none outlives its limit even if this script is
# killed) and the EXIT trap kills whatever is still running. Exit 77 = skipped (no Fashion-MNIST,
# no openssl).
set -euo pipefail

server_exe="$1"
client_exe="$2"
work="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
make_certs="$here/../../scripts/make_certs.sh"
rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=1

fmnist_dir="${FEDPP_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [[ ! -e "$fmnist_dir/train-images-idx3-ubyte.gz" && ! -e "$fmnist_dir/train-images-idx3-ubyte" ]]; then
  echo "SKIP: Fashion-MNIST not found in $fmnist_dir (Debian: dataset-fashion-mnist)"
  exit 77
fi

declare -A tpid=()  # name -> pid of the subshell running `timeout PROGRAM`

# tree PID: PID and its descendants, deepest first.
tree() {
  local c
  for c in $(pgrep -P "$1" || true); do tree "$c"; done
  echo "$1"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local name p
  for name in "${!tpid[@]}"; do
    for p in $(tree "${tpid[$name]}"); do kill -KILL "$p" 2>/dev/null || true; done
  done
  wait 2>/dev/null || true
  if ((rc != 0)); then
    echo "---- test failed (status $rc); logs in $work:" >&2
    for f in "$work"/*.log; do
      [[ -e "$f" ]] || continue
      echo "---- $(basename "$f") (last 15 lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# spawn NAME SECONDS PROGRAM ARGS...: runs PROGRAM under timeout in the background, output in
# $work/NAME.log. (The quiet subshell reports a program killed by a signal as the exit status
# 128 + n, without bash's "Killed" notice.)
spawn() {
  local name="$1" limit="$2"
  shift 2
  (
    timeout -k 5 "$limit" "$@" >"$work/$name.log" 2>&1 && exit 0 || exit $?
  ) 2>/dev/null &
  tpid[$name]=$!
}

# pid_of NAME: sets $pid to the program's own pid (the child of its timeout).
pid_of() {
  local t
  pid=""
  for _ in $(seq 100); do
    t="$(pgrep -P "${tpid[$1]}" | head -n 1 || true)"
    [[ -n "$t" ]] && pid="$(pgrep -P "$t" | head -n 1 || true)"
    [[ -n "$pid" ]] && return 0
    sleep 0.02
  done
  fail "no process for $1"
}

# finish NAME: waits for NAME and sets $status to its exit status (124: its timeout expired).
finish() {
  status=0
  wait "${tpid[$1]}" || status=$?
  unset "tpid[$1]"
}

# expect_exit NAME STATUS: waits for NAME and checks its exit status.
expect_exit() {
  finish "$1"
  [[ "$status" == "$2" ]] || fail "$1 exited with status $status, expected $2"
}

# wait_for_text FILE TEXT SECONDS: waits until FILE contains TEXT (fixed string).
wait_for_text() {
  local end=$((SECONDS + $3))
  while ((SECONDS <= end)); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "no '$2' in $1 within $3 s"
}

# expect_text FILE TEXT: FILE contains TEXT (fixed string).
expect_text() {
  grep -qF -- "$2" "$1" || fail "no '$2' in $1"
}

# start_server NAME ARGS...: a server on 127.0.0.1 (free port unless --port is in ARGS); sets $port.
start_server() {
  local name="$1"
  shift
  rm -f "$work/$name.port"
  spawn "$name" 60 "$server_exe" --port-file "$work/$name.port" "$@"
  local end=$((SECONDS + 20))
  while [[ ! -s "$work/$name.port" ]]; do
    kill -0 "${tpid[$name]}" 2>/dev/null || fail "$name exited before listening"
    ((SECONDS <= end)) || fail "$name did not listen within 20 s"
    sleep 0.05
  done
  port="$(cat "$work/$name.port")"
}

# make_certs N: TLS material for N clients in $work/certs (skips the test without openssl).
make_certs() {
  if ! command -v openssl >/dev/null 2>&1; then
    echo "SKIP: the openssl command is not installed"
    exit 77
  fi
  bash "$make_certs" "$work/certs" "$1" >/dev/null
  certs="$work/certs"
}
