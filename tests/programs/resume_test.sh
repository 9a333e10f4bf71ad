#!/usr/bin/env bash
# (b) Resume after SIGKILL: a server killed with kill -9 in the middle of its run and restarted
# with --resume on the same port ends with the same model, byte for byte, as an uninterrupted run.
# The clients are not restarted: they reconnect by themselves and replay the round the restarted
# server asks for again. Their state matters (top-k with error feedback, momentum kept across
# rounds, 2 of 3 clients sampled per round), so a lost or wrongly replayed client state would show.
# FEDPP_RESUME_SLOW=1 (resume_slow_test.sh): 2 clients whose round of training (~1 s) outlasts the
# server's restart, so they reconnect while still training the round the killed server asked for.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${FEDPP_RESUME_SLOW:-0}" == 1 ]]; then
  n=2 rounds=4 kill_after=1 per_round=0 train=(--train-limit 4000 --epochs 100)
else
  n=3 rounds=12 kill_after=3 per_round=2 train=(--train-limit 6000 --epochs 6)
fi
common=(--clients "$n" --clients-per-round "$per_round" --seed 5 --compressor topk --compress-ratio 0.05
  --test-limit 500 --insecure-plaintext)
ids=($(seq 0 $((n - 1))))
clients() { # clients PREFIX: starts the n clients against $port
  for i in "${ids[@]}"; do
    spawn "$1$i" 80 "$client_exe" --port "$port" --id "$i" --clients "$n" "${train[@]}" \
      --compressor topk --compress-ratio 0.05 --error-feedback --momentum 0.9 --keep-momentum \
      --insecure-plaintext --retry-max 300 --give-up 30
  done
}
kill_line="$(printf 'round %*d/%d' "${#rounds}" "$kill_after" "$rounds")"

# The reference: an uninterrupted run.
start_server ref "${common[@]}" --rounds "$rounds" --save-model "$work/ref.bin"
clients ref
expect_exit ref 0
for i in "${ids[@]}"; do expect_exit "ref$i" 0; done
[[ -s "$work/ref.bin" ]] || fail "the reference run wrote no model"

# The same run, killed once round $kill_after is done and checkpointed, then restarted with
# --resume. Should the run get to its end before the kill lands (a very slow poll), it is tried
# again.
for attempt in 1 2 3; do
  rm -rf "$work/ckpt" "$work/metrics.csv"
  start_server first "${common[@]}" --rounds "$rounds" --checkpoint "$work/ckpt" --metrics "$work/metrics.csv"
  clients run
  wait_for_text "$work/first.log" "$kill_line" 60
  for _ in $(seq 200); do
    [[ -e "$work/ckpt/server.ckpt" ]] && break
    sleep 0.01
  done
  pid_of first
  kill -KILL "$pid"
  expect_exit first 137
  grep -qF "round $rounds/$rounds" "$work/first.log" || break
  echo "attempt $attempt: the run finished before the kill; again"
  for i in "${ids[@]}"; do finish "run$i"; done
  ((attempt < 3)) || fail "the run always finished before it was killed; make rounds slower"
done
[[ -s "$work/ckpt/server.ckpt" ]] || fail "no checkpoint after round $kill_after"
start_server second "${common[@]}" --rounds "$rounds" --checkpoint "$work/ckpt" --metrics "$work/metrics.csv" \
  --resume --port "$port" --save-model "$work/resumed.bin"
expect_exit second 0
for i in "${ids[@]}"; do
  expect_exit "run$i" 0
  expect_text "$work/run$i.log" "2 connection(s)"
  if [[ "${FEDPP_RESUME_SLOW:-0}" == 1 ]]; then expect_text "$work/run$i.log" "1 round(s) replayed"; fi
done
expect_text "$work/second.log" "resumed from"
expect_text "$work/second.log" "round $rounds/$rounds"
cmp "$work/ref.bin" "$work/resumed.bin" || fail "the resumed run's model differs from the uninterrupted run's"
# The metrics file holds every round once, in order.
rows="$(tail -n +2 "$work/metrics.csv" | cut -d, -f1 | tr '\n' ' ')"
[[ "$rows" == "$(seq -s ' ' 1 "$rounds") " ]] || fail "metrics rows are '$rows'"
resumed_at="$(sed -n 's/.*after round \([0-9]*\).*/\1/p' "$work/second.log")"
echo "PASS: killed after round >= $kill_after, resumed after round $resumed_at; final model identical to the uninterrupted run's"
