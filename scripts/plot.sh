#!/usr/bin/env bash
# Plots a fedpp metrics CSV (as written by fedpp::MetricsWriter) with gnuplot: test accuracy
# (top panel) and train loss (bottom panel) against the round.
# Usage: scripts/plot.sh METRICS.csv OUT.png [TITLE]
# The CSV is comma-separated with a header line; the columns `round`, `train_loss` and
# `test_accuracy` are found by name, in any position. Empty fields (rounds without an
# evaluation) and nan are skipped.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") METRICS.csv OUT.png [TITLE]" >&2
  exit 2
}
(($# >= 2 && $# <= 3)) || usage
csv="$1"
out="$2"
title="${3:-$(basename "$csv")}"

if [[ ! -r "$csv" ]]; then
  echo "plot.sh: cannot read $csv" >&2
  exit 1
fi
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot.sh: gnuplot not found (scripts/setup.sh installs gnuplot-nox)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Split the CSV into two whitespace-separated series, finding the columns from the header.
awk -F',' -v loss="$tmp/loss.dat" -v acc="$tmp/acc.dat" -v range="$tmp/range" '
  function trim(s) { gsub(/^[ \t"]+|[ \t"\r]+$/, "", s); return s }
  function usable(s) { s = tolower(s); return s != "" && s != "nan" && s != "-nan" && s != "inf" && s != "-inf" }
  NR == 1 {
    for (i = 1; i <= NF; i++) col[trim($i)] = i
    missing = ""
    split("round train_loss test_accuracy", need, " ")
    for (k = 1; k <= 3; k++) if (!(need[k] in col)) missing = missing " " need[k]
    if (missing != "") { print "plot.sh: the header lacks column(s):" missing > "/dev/stderr"; bad = 1; exit 1 }
    r = col["round"]; l = col["train_loss"]; a = col["test_accuracy"]
    printf "" > loss; printf "" > acc
    next
  }
  {
    x = trim($r); y = trim($l); z = trim($a)
    if (!usable(x)) next
    if (usable(y)) print x, y > loss
    if (usable(z)) print x, z > acc
    if (usable(y) || usable(z)) {
      if (n == 0 || x + 0 < lo) lo = x + 0
      if (n == 0 || x + 0 > hi) hi = x + 0
      n++
    }
  }
  END {
    if (bad) exit 1
    if (NR < 1) { print "plot.sh: the file is empty" > "/dev/stderr"; exit 1 }
    if (n > 0) print lo, hi > range
  }
' "$csv"

xmin=0
xmax=1
[[ -s "$tmp/range" ]] && read -r xmin xmax < "$tmp/range"
if [[ "$xmin" == "$xmax" ]]; then  # one round: give the axis some width
  xmin="$xmin-0.5"
  xmax="$xmax+0.5"
fi
n_loss=$(wc -l < "$tmp/loss.dat")
n_acc=$(wc -l < "$tmp/acc.dat")
if ((n_loss == 0 && n_acc == 0)); then
  echo "plot.sh: no data rows with train_loss or test_accuracy in $csv" >&2
  exit 1
fi

# gnuplot single-quoted strings: a quote is written twice.
gq() { printf "'%s'" "${1//\'/\'\'}"; }

terminal="pngcairo size 900,800 font 'sans,10'"
gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || terminal="png size 900,800"

panel() {  # panel FILE COUNT YLABEL COLOR
  echo "set ylabel $(gq "$3")"
  echo "set xrange [${xmin}:${xmax}]"
  if (($2 > 0)); then
    echo "plot $(gq "$1") using 1:2 with linespoints pt 7 ps 0.5 lw 2 lc rgb '$4' notitle"
  else
    echo "set label 1 'no data' at graph 0.5, graph 0.5 center"
    echo "set yrange [0:1]; unset ytics"
    echo "plot NaN notitle"
    echo "unset label 1; set autoscale y; set ytics"
  fi
}

{
  echo "set terminal $terminal noenhanced"
  echo "set output $(gq "$out")"
  echo "set grid"
  echo "set key off"
  echo "set multiplot layout 2,1 title $(gq "$title")"
  echo "set xlabel 'round'"
  echo "if ((${xmax}) - (${xmin}) <= 12) set xtics 1"  # whole rounds when there are few
  panel "$tmp/acc.dat" "$n_acc" "test accuracy" "#1f77b4"
  panel "$tmp/loss.dat" "$n_loss" "train loss" "#d62728"
  echo "unset multiplot"
  echo "set output"
} > "$tmp/plot.gp"

gnuplot "$tmp/plot.gp"
echo "plot.sh: wrote $out ($n_acc accuracy points, $n_loss loss points)"
