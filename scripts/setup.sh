#!/usr/bin/env bash
# Installs fedpp's build, test, demo and benchmark dependencies from Debian packages.
# Idempotent: packages already installed are skipped, so a second run needs no network.
# Usage: scripts/setup.sh
set -euo pipefail

packages=(
  g++                    # C++20 compiler
  cmake                  # build system (>= 3.25)
  make                   # build tool
  libeigen3-dev          # linear algebra (fedpp::fedpp)
  zlib1g-dev             # gzip'd IDX files (fedpp::data)
  libcereal-dev          # serialization (fedpp::serialization)
  libboost-dev           # Boost.Asio headers (fedpp::net)
  libssl-dev             # TLS for fedpp::net (OpenSSL)
  libcli11-dev           # command-line flags of fedpp_server and fedpp_client (examples/net)
  openssl                # scripts/make_certs.sh: TLS certificates for scripts/cluster.sh and tests/programs
  catch2                 # unit tests (Catch2 v2)
  clang                  # libFuzzer target for the payload decoders (tests/fuzz)
  libclang-rt-14-dev     # libFuzzer and sanitizer runtimes for clang 14
  libomp-dev             # OpenMP for clang (ctest headers/clang parses the headers with -fopenmp)
  libbenchmark-dev       # benchmarks
  dataset-fashion-mnist  # data set used by the examples and scripts/demo.sh
  gnuplot-nox            # scripts/plot.sh
  python3                # scripts/mutants.sh (mutation testing) and its list check in ctest
)

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup.sh: dpkg-query not found; this script supports Debian-based systems only" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if is_installed "$p"; then
    echo "setup.sh: $p already installed"
  else
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup.sh: all ${#packages[@]} packages present; nothing to do"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup.sh: not root and sudo is not available; install as root: ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi

run() {
  echo "+ $*"
  "$@"
}

# `env` so that DEBIAN_FRONTEND survives sudo's environment reset.
echo "setup.sh: installing ${missing[*]}"
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "setup.sh: done"
