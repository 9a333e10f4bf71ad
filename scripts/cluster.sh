#!/usr/bin/env bash
# A federation on this machine over loopback TCP: builds fedpp_server and fedpp_client (Release, in
# build/, as scripts/demo.sh), makes TLS certificates in a temporary folder (scripts/make_certs.sh),
# starts one fedpp_server with TLS and mutual TLS on 127.0.0.1 on a free port and N fedpp_client
# processes (client i trains shard i of N), and trains Fashion-MNIST; the server prints one line per
# round. Waits for the server to finish, then stops everything it started (also when interrupted).
# Usage: scripts/cluster.sh [N] [server flags...] [-- client flags...]
#   scripts/cluster.sh                          # 4 clients, 5 rounds, softmax, 12000 training images: < 1 min
#   scripts/cluster.sh 8 --rounds 30 --model mlp --train-limit 0 -- --epochs 2 --lr 0.1
#   scripts/cluster.sh 4 --aggregator median --compressor topk --compress-ratio 0.05 -- --error-feedback
# Flags both sides must agree on (--model, --hidden, --compressor, --compress-ratio, --qsgd-levels,
# --qsgd-bucket, --data-dir) go to the clients too; --train-limit goes to the clients only. Defaults
# unless given: server --rounds 5 --model softmax --test-limit 2000, clients --train-limit 12000.
# Environment: FEDPP_JOBS=N build parallelism (default: nproc); FEDPP_BUILD_DIR (default build/);
# OMP_NUM_THREADS (default 1 per process); FEDPP_CLUSTER_KEEP=1 keeps the temporary folder.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FEDPP_BUILD_DIR:-$root/build}"
jobs="${FEDPP_JOBS:-$(nproc)}"

n=4
if (($# > 0)) && [[ "$1" =~ ^[0-9]+$ ]]; then
  n="$1"
  shift
fi
if ((n < 1)); then
  echo "cluster.sh: N must be >= 1, got $n" >&2
  exit 2
fi
server_args=()
client_args=()
for_clients=0
for arg in "$@"; do
  if ((for_clients == 0)) && [[ "$arg" == "--" ]]; then
    for_clients=1
  elif ((for_clients)); then
    client_args+=("$arg")
  else
    server_args+=("$arg")
  fi
done
if [[ " ${server_args[*]:-} " == *" --help "* || " ${server_args[*]:-} " == *" -h "* ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

# Split the server flags: shared ones go to the clients too, --train-limit to the clients only.
shared=(--model --hidden --compressor --compress-ratio --qsgd-levels --qsgd-bucket --data-dir)
srv=()
shared_args=()
train_limit=()
is_shared() {
  local s
  for s in "${shared[@]}"; do [[ "$1" == "$s" ]] && return 0; done
  return 1
}
i=0
while ((i < ${#server_args[@]})); do
  a="${server_args[i]}"
  name="${a%%=*}"
  if [[ "$a" == *=* ]]; then
    pair=("$a")
  else
    pair=("$a" "${server_args[i + 1]:-}")
  fi
  if [[ "$name" == --train-limit ]]; then
    train_limit+=("${pair[@]}")
  elif is_shared "$name"; then
    shared_args+=("${pair[@]}")
    srv+=("${pair[@]}")
  else
    pair=("$a")
    srv+=("$a")
  fi
  i=$((i + ${#pair[@]}))
done

given() { # given FLAG ARGS...: whether FLAG (or FLAG=...) is among ARGS
  local flag="$1"
  shift
  for a in "$@"; do
    [[ "$a" == "$flag" || "$a" == "$flag="* ]] && return 0
  done
  return 1
}
given --rounds "${srv[@]}" || srv+=(--rounds 5)
given --model "${srv[@]}" || { srv+=(--model softmax); shared_args+=(--model softmax); }
given --test-limit "${srv[@]}" || srv+=(--test-limit 2000)
((${#train_limit[@]})) || given --train-limit "${client_args[@]}" || train_limit=(--train-limit 12000)

"$root/scripts/setup.sh" >/dev/null
echo "+ cmake -S $root -B $build -DCMAKE_BUILD_TYPE=Release -DFEDPP_BUILD_EXAMPLES=ON"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFEDPP_BUILD_EXAMPLES=ON -DFEDPP_SANITIZE= >/dev/null
echo "+ cmake --build $build --target fedpp_server fedpp_client --parallel $jobs"
cmake --build "$build" --target fedpp_server fedpp_client --parallel "$jobs" >/dev/null
server_exe="$build/examples/fedpp_server"
client_exe="$build/examples/fedpp_client"

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fedpp-cluster.XXXXXX")"
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 20); do
      kill -0 "${pids[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [[ "${FEDPP_CLUSTER_KEEP:-0}" == 1 ]]; then
    echo "cluster.sh: kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$root/scripts/make_certs.sh" "$tmp/certs" "$n" >/dev/null
c="$tmp/certs"
echo "+ fedpp_server --clients $n --port 0 (TLS, mutual TLS) ${srv[*]}"
"$server_exe" --address 127.0.0.1 --port 0 --port-file "$tmp/port" --clients "$n" \
  --tls-cert "$c/server.pem" --tls-key "$c/server.key" --tls-ca "$c/ca.pem" --require-client-cert "${srv[@]}" &
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 600); do
  [[ -s "$tmp/port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -s "$tmp/port" ]]; then
  wait "$server_pid" && rc=0 || rc=$?
  echo "cluster.sh: the server did not start (exit status $rc)" >&2
  exit $((rc ? rc : 1))
fi
port="$(cat "$tmp/port")"
echo "+ $n x fedpp_client --port $port --clients $n --id <i> (TLS, certificate client-<i>)" \
  "${shared_args[*]:-} ${train_limit[*]} ${client_args[*]:-}"
client_pids=()
for ((k = 0; k < n; ++k)); do
  "$client_exe" --host 127.0.0.1 --port "$port" --id "$k" --clients "$n" --tls-ca "$c/ca.pem" \
    --tls-cert "$c/client-$k.pem" --tls-key "$c/client-$k.key" "${shared_args[@]}" "${train_limit[@]}" \
    "${client_args[@]}" >"$tmp/client-$k.log" 2>&1 &
  client_pids+=($!)
  pids+=($!)
done

wait "$server_pid" && server_rc=0 || server_rc=$?
failed=0
for ((k = 0; k < n; ++k)); do
  # After the server's goodbye every client exits at once; allow a few seconds.
  for _ in $(seq 100); do
    kill -0 "${client_pids[k]}" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "${client_pids[k]}" 2>/dev/null && kill -TERM "${client_pids[k]}" 2>/dev/null
  wait "${client_pids[k]}" && rc=0 || rc=$?
  if ((rc != 0)); then
    failed=$((failed + 1))
    echo "cluster.sh: client $k exited with status $rc; the end of its log:" >&2
    tail -n 5 "$tmp/client-$k.log" >&2
  fi
done
pids=()
if ((server_rc != 0)); then
  echo "cluster.sh: the server exited with status $server_rc" >&2
  exit "$server_rc"
fi
((failed == 0)) || exit 1
echo "cluster.sh: done; the server and $n clients exited cleanly"
