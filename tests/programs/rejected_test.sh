#!/usr/bin/env bash
# (d) Rejected clients: with per-client tokens, a client with a wrong token and a client with an id
# outside the federation are refused; each exits 3 with the server's reason, and the server (which
# logs both refusals) goes on to train with its honest clients. Also: bad flags exit 2 naming the
# flag and the value.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

printf '%s\n' token-zero token-one token-two >"$work/tokens.txt"
start_server server --clients 3 --rounds 2 --test-limit 500 --insecure-plaintext --tokens "$work/tokens.txt"
base=("$client_exe" --port "$port" --train-limit 3000 --insecure-plaintext)

spawn wrong_token 30 "${base[@]}" --clients 3 --id 1 --token not-the-token
spawn unknown_id 30 "${base[@]}" --clients 8 --id 7 --token token-one
expect_exit wrong_token 3
expect_exit unknown_id 3
expect_text "$work/wrong_token.log" "rejected: "
expect_text "$work/wrong_token.log" "wrong or missing token for client 1"
expect_text "$work/unknown_id.log" "rejected: "
expect_text "$work/unknown_id.log" "client id must be < 3, got 7"

for i in 0 1 2; do spawn "client$i" 50 "${base[@]}" --clients 3 --id "$i" --tokens "$work/tokens.txt"; done
expect_exit server 0
for i in 0 1 2; do expect_exit "client$i" 0; done
expect_text "$work/server.log" "round 2/2"
expect_text "$work/server.log" "rejected 2"
[[ "$(grep -c ") rejected: " "$work/server.log")" == 2 ]] || fail "the server should log 2 rejections"

# Bad flag values: exit 2, the flag and the value named.
check_usage() { # check_usage TEXT PROGRAM ARGS...
  local text="$1" rc=0
  shift
  "$@" >"$work/usage.log" 2>&1 || rc=$?
  [[ "$rc" == 2 ]] || fail "'${*:2}' exited with $rc, expected 2"
  expect_text "$work/usage.log" "$text"
}
check_usage "--aggregator: nonsense not in" "$server_exe" --clients 3 --insecure-plaintext --aggregator nonsense
check_usage "--fraction: must be in (0, 1], got '1.5'" "$server_exe" --clients 3 --insecure-plaintext --fraction 1.5
check_usage "--insecure-plaintext" "$server_exe" --clients 3
check_usage "--tokens: must hold one token per client" "$server_exe" --clients 4 --insecure-plaintext --tokens "$work/tokens.txt"
check_usage "--id: must be < --clients 3, got '3'" "$client_exe" --port 1 --clients 3 --id 3 --insecure-plaintext
check_usage "--byzantine: sometimes not in" "$client_exe" --port 1 --clients 3 --id 0 --insecure-plaintext --byzantine sometimes
check_usage "--lr: must be > 0, got '-1'" "$client_exe" --port 1 --clients 3 --id 0 --insecure-plaintext --lr -1
echo "PASS: a wrong token and an unknown id were rejected (exit 3); bad flags exit 2"
