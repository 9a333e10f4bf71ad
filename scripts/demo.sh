#!/usr/bin/env bash
# Builds fedpp's examples (Release, in build/) and runs FedAvg on Fashion-MNIST, then plots the
# run's test accuracy and train loss to build/fedavg_fmnist.png.
# Usage: scripts/demo.sh [fedavg_fmnist options]
#   e.g. scripts/demo.sh --rounds 30 --clients 100 --fraction 0.1 --alpha 0.5 --model mlp --seed 1
#        scripts/demo.sh --iid --model softmax --threads 2 --metrics /tmp/run.csv
# Metrics go to build/fedavg_fmnist.csv unless --metrics FILE is given.
# Environment: FEDPP_JOBS=N build parallelism (default: nproc).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
jobs="${FEDPP_JOBS:-$(nproc)}"

# Relative paths in the arguments (e.g. --metrics out.csv) stay relative to the caller's
# directory: the example runs from there.
metrics=""
want_help=0
prev=""
for arg in "$@"; do
  case "$arg" in
    --metrics=*) metrics="${arg#--metrics=}" ;;
    -h | --help) want_help=1 ;;
  esac
  [[ "$prev" == "--metrics" ]] && metrics="$arg"
  prev="$arg"
done
args=("$@")
if [[ -z "$metrics" ]]; then
  metrics="$build/fedavg_fmnist.csv"
  args+=(--metrics "$metrics")
fi

"$root/scripts/setup.sh"

echo "+ cmake -S $root -B $build -DCMAKE_BUILD_TYPE=Release -DFEDPP_BUILD_EXAMPLES=ON"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFEDPP_BUILD_EXAMPLES=ON -DFEDPP_SANITIZE=
echo "+ cmake --build $build --target fedavg_fmnist --parallel $jobs"
cmake --build "$build" --target fedavg_fmnist --parallel "$jobs"

exe="$build/examples/fedavg_fmnist"
echo "+ $exe ${args[*]}"
"$exe" "${args[@]}"

if ((want_help)); then
  exit 0
fi
case "$metrics" in
  *.json | *.jsonl)
    echo "demo.sh: metrics written as JSON lines to $metrics; plot.sh reads CSV only, no plot made"
    exit 0
    ;;
esac
png="$build/fedavg_fmnist.png"
"$root/scripts/plot.sh" "$metrics" "$png" "FedAvg on Fashion-MNIST: fedavg_fmnist ${*:-(defaults)}"
echo "demo.sh: metrics in $metrics, plot in $png"
