#!/usr/bin/env bash
# (e) Tokens over TLS without client certificates: the server presents its certificate, clients
# verify it against the CA and authenticate with their tokens; the run completes. A client that
# expects another server name fails the certificate check and gives up (exit 1, reason printed);
# a client with another client's token is rejected (exit 3).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_certs 3

start_server server --clients 3 --rounds 2 --test-limit 500 --tls-cert "$certs/server.pem" \
  --tls-key "$certs/server.key" --tokens "$certs/tokens.txt"
base=("$client_exe" --port "$port" --clients 3 --train-limit 3000 --tls-ca "$certs/ca.pem")

spawn wrong_name 30 "${base[@]}" --id 0 --tokens "$certs/tokens.txt" --server-name wrong.example --give-up 1
spawn stolen 30 "${base[@]}" --id 0 --token "$(sed -n 2p "$certs/tokens.txt")"
expect_exit wrong_name 1
expect_text "$work/wrong_name.log" "certificate verify failed"
expect_text "$work/wrong_name.log" "no connection to 127.0.0.1:$port"
expect_exit stolen 3
expect_text "$work/stolen.log" "wrong or missing token for client 0"

for i in 0 1 2; do spawn "client$i" 50 "${base[@]}" --id "$i" --tokens "$certs/tokens.txt"; done
expect_exit server 0
for i in 0 1 2; do expect_exit "client$i" 0; done
expect_text "$work/server.log" "round 2/2"
expect_text "$work/server.log" "final test accuracy"
echo "PASS: TLS with tokens; a wrong server name and a stolen token were refused"
