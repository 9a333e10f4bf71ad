#!/usr/bin/env bash
# (c) Clients lost in the middle of a round: with --deadline and --quorum, one client is killed
# with kill -9 (its connection closes: the server counts it dropped at once) and another is
# frozen with SIGSTOP (it stays connected but never answers: the round ends at the deadline with
# it timed out). Every round still completes on the quorum and the run finishes; the remaining
# clients exit 0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=8
start_server server --clients 4 --rounds "$rounds" --deadline 2000 --quorum 2 --test-limit 500 \
  --heartbeat 200 --idle-timeout 6000 --insecure-plaintext
for i in 0 1 2 3; do
  spawn "client$i" 50 "$client_exe" --port "$port" --id "$i" --clients 4 --train-limit 8000 --epochs 8 \
    --insecure-plaintext --give-up 5
done
log="$work/server.log"
pid_of client3
killed="$pid"
pid_of client2
stopped="$pid"
wait_for_text "$log" "round 1/$rounds" 30
kill -KILL "$killed"  # round 2 has just started: it is training
kill -STOP "$stopped"
expect_exit server 0
kill -KILL "$stopped"
expect_exit client3 137
expect_exit client2 137
for i in 0 1; do expect_exit "client$i" 0; done

expect_text "$log" "round $rounds/$rounds"
# The killed client: its connection closed (dropped from the round it was in, if it was in one).
grep -qE "^fedpp_server: client 3 \(.*\) closed" "$log" || fail "no closed event for client 3"
# The frozen one: timed out at a round's deadline.
expect_text "$log" "timed out)"
grep -qF "no quorum" "$log" && fail "a round missed its quorum"
# Every round accepted at least the quorum of 2 updates ("a/b ok" on its progress line).
while read -r ok; do
  ((${ok%%/*} >= 2)) || fail "a round accepted only $ok"
done < <(sed -n 's/^round .*  \([0-9]*\/[0-9]*\) ok.*/\1/p' "$log")
echo "PASS: a killed and a frozen client; all $rounds rounds completed on the quorum"
grep '^round' "$log"
