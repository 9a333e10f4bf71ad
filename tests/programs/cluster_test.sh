#!/usr/bin/env bash
# (a) A federation of 3 fedpp_client processes and a fedpp_server with TLS and mutual TLS: the
# server finishes its rounds and prints the final accuracy, every client exits 0 after the
# goodbye; a client presenting another client's certificate is rejected (exit 3) with the reason.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_certs 3

start_server server --clients 3 --rounds 3 --test-limit 1000 --tls-cert "$certs/server.pem" \
  --tls-key "$certs/server.key" --tls-ca "$certs/ca.pem" --require-client-cert
tls_client() { # tls_client ID CERT-ID: sets $args to the client's command line
  args=("$client_exe" --port "$port" --id "$1" --clients 3 --train-limit 3000 --tls-ca "$certs/ca.pem"
    --tls-cert "$certs/client-$2.pem" --tls-key "$certs/client-$2.key")
}

# An impostor: id 1 with client 0's certificate (the server waits for its 3 clients meanwhile).
tls_client 1 0
spawn impostor 30 "${args[@]}"
expect_exit impostor 3
expect_text "$work/impostor.log" "rejected"
expect_text "$work/impostor.log" "common name must be 'client-1', got 'client-0'"

for i in 0 1 2; do
  tls_client "$i" "$i"
  spawn "client$i" 50 "${args[@]}"
done
expect_exit server 0
for i in 0 1 2; do
  expect_exit "client$i" 0
  expect_text "$work/client$i.log" "done: "
done
log="$work/server.log"
expect_text "$log" "round 3/3"
expect_text "$log" "3/3 ok"
expect_text "$log" "rejected: "
acc="$(sed -n 's/.*final test accuracy \([0-9.]*\)%.*/\1/p' "$log")"
[[ -n "$acc" ]] || fail "no final accuracy line in $log"
awk -v a="$acc" 'BEGIN { exit !(a > 50) }' || fail "final accuracy $acc% is not above 50%"
echo "PASS: 3 TLS clients trained 3 rounds to $acc% test accuracy; an impostor certificate was rejected"
