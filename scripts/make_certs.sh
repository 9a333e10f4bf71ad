#!/usr/bin/env bash
# Makes the TLS material of a loopback federation with the openssl CLI: a federation CA, a server
# certificate for 127.0.0.1 / localhost, N client certificates (CN client-<i>, for mutual TLS) and
# a tokens file (one random hex token per line, line i+1 = client i). For tests and demos: keys are
# unencrypted P-256 keys; nothing of this belongs in the repository.
# Usage: scripts/make_certs.sh DIR [N]      (N defaults to 4)
# Writes into DIR: ca.pem ca.key server.pem server.key client-<i>.pem client-<i>.key tokens.txt
#   fedpp_server --tls-cert DIR/server.pem --tls-key DIR/server.key --tls-ca DIR/ca.pem --require-client-cert
#   fedpp_client --tls-ca DIR/ca.pem --tls-cert DIR/client-<i>.pem --tls-key DIR/client-<i>.key
set -euo pipefail

if (($# < 1 || $# > 2)) || [[ "$1" == -h || "$1" == --help ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  (($# >= 1)) && [[ "$1" == -h || "$1" == --help ]] && exit 0
  exit 2
fi
dir="$1"
n="${2:-4}"
if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1)); then
  echo "make_certs.sh: N must be a positive integer, got '$n'" >&2
  exit 2
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "make_certs.sh: the openssl command is not installed (Debian: apt-get install openssl)" >&2
  exit 1
fi

mkdir -p "$dir"
umask 077
days=30
work="$(mktemp -d "${TMPDIR:-/tmp}/fedpp-certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# signed NAME CN EXTENSIONS: a key and a certificate signed by the CA.
signed() {
  local name="$1" cn="$2" ext="$3"
  key "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/O=fedpp federation/CN=$cn" -out "$work/$name.csr"
  printf '%s\n' "$ext" >"$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -CAserial "$work/ca.srl" -days "$days" -sha256 -extfile "$work/$name.ext" -out "$dir/$name.pem" 2>/dev/null
}

key "$dir/ca.key"
openssl req -new -x509 -key "$dir/ca.key" -subj "/O=fedpp federation/CN=fedpp federation CA" -days "$days" -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem"

signed server "localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"

for ((i = 0; i < n; ++i)); do
  signed "client-$i" "client-$i" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done

: >"$dir/tokens.txt"
for ((i = 0; i < n; ++i)); do
  openssl rand -hex 16 >>"$dir/tokens.txt"
done
chmod 644 "$dir"/*.pem
echo "make_certs.sh: CA, server certificate (127.0.0.1, localhost), $n client certificates and tokens.txt in $dir"
