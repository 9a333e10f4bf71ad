#!/usr/bin/env bash
# (b) Resume after SIGKILL: a server killed with kill -9 in the middle of its run and restarted
# with --resume on the same port ends with the same model, byte for byte, as an uninterrupted run.
# The clients are not restarted: they reconnect by themselves and replay the round the restarted
# server asks for again. Their state matters (top-k with error feedback, momentum kept across
# rounds, 2 of 3 clients sampled per round), so a lost or wrongly replayed client state would show.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=12
common=(--clients 3 --clients-per-round 2 --seed 5 --compressor topk --compress-ratio 0.05 --test-limit 500
  --insecure-plaintext)
clients() { # clients PREFIX: starts the 3 clients against $port
  for i in 0 1 2; do
    spawn "$1$i" 60 "$client_exe" --port "$port" --id "$i" --clients 3 --train-limit 6000 --epochs 6 \
      --compressor topk --compress-ratio 0.05 --error-feedback --momentum 0.9 --keep-momentum \
      --insecure-plaintext --retry-max 300 --give-up 30
  done
}

# The reference: an uninterrupted run.
start_server ref "${common[@]}" --rounds "$rounds" --save-model "$work/ref.bin"
clients ref
expect_exit ref 0
for i in 0 1 2; do expect_exit "ref$i" 0; done
[[ -s "$work/ref.bin" ]] || fail "the reference run wrote no model"

# The same run, killed after round 3's progress line and restarted with --resume. Should the run
# get to its end before the kill lands (a very slow poll), it is tried again.
for attempt in 1 2 3; do
  rm -rf "$work/ckpt" "$work/metrics.csv"
  start_server first "${common[@]}" --rounds "$rounds" --checkpoint "$work/ckpt" --metrics "$work/metrics.csv"
  clients run
  wait_for_text "$work/first.log" "round  3/$rounds" 30
  pid_of first
  kill -KILL "$pid"
  expect_exit first 137
  grep -qF "round $rounds/$rounds" "$work/first.log" || break
  echo "attempt $attempt: the run finished before the kill; again"
  for i in 0 1 2; do finish "run$i"; done
  ((attempt < 3)) || fail "the run always finished before it was killed; make rounds slower"
done
[[ -s "$work/ckpt/server.ckpt" ]] || fail "no checkpoint after round 3"
start_server second "${common[@]}" --rounds "$rounds" --checkpoint "$work/ckpt" --metrics "$work/metrics.csv" \
  --resume --port "$port" --save-model "$work/resumed.bin"
expect_exit second 0
for i in 0 1 2; do
  expect_exit "run$i" 0
  expect_text "$work/run$i.log" "2 connection(s)"
done
expect_text "$work/second.log" "resumed from"
expect_text "$work/second.log" "round $rounds/$rounds"
cmp "$work/ref.bin" "$work/resumed.bin" || fail "the resumed run's model differs from the uninterrupted run's"
# The metrics file holds every round once, in order.
rows="$(tail -n +2 "$work/metrics.csv" | cut -d, -f1 | tr '\n' ' ')"
[[ "$rows" == "$(seq -s ' ' 1 "$rounds") " ]] || fail "metrics rows are '$rows'"
resumed_at="$(sed -n 's/.*after round \([0-9]*\).*/\1/p' "$work/second.log")"
echo "PASS: killed after round >= 3, resumed after round $resumed_at; final model identical to the uninterrupted run's"
