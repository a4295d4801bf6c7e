#!/bin/bash
# Side-by-side runs of two commands (an old build and a new one),
# alternating which goes first each round; an awk program picks one figure
# (higher is better) from each run's stdout. Prints each round's pair and
# ratio, then the median new/old ratio with its range.
#
#   benches/ab.sh ROUNDS AWK_PROGRAM OLD_COMMAND NEW_COMMAND
#
# Examples (OLD_BIN and NEW_BIN: `corral` binaries of the two commits):
#   # bench embed, 1 worker × 2 threads, through the pool
#   benches/ab.sh 5 -F'|' '/1 worker × 2 threads/ {print $4+0}' \
#     "$OLD_BIN bench embed --configs 1x2" "$NEW_BIN bench embed --configs 1x2"
#   # bench serve, 16 clients × 1 sentence
#   benches/ab.sh 5 -F'|' '/corral serve \| 16 × 1 / {print $4+0}' \
#     "$OLD_BIN bench serve --seconds 5 --no-inprocess" "$NEW_BIN bench serve --seconds 5 --no-inprocess"
#   # one binary, two kernel builds forced through CORRAL_ISA (int8, AVX2 vs AVX-512 VNNI)
#   benches/ab.sh 9 -F'|' '/2 workers × 1 thread/ {print $4+0}' \
#     "CORRAL_ISA=avx2 $NEW_BIN bench embed --quantize int8 --configs 2x1 --runs 1 --no-fidelity" \
#     "CORRAL_ISA=avx512vnni-512 $NEW_BIN bench embed --quantize int8 --configs 2x1 --runs 1 --no-fidelity"
# (`-F'|'` is passed to awk before the program; any leading awk options are.)
set -euo pipefail
rounds=$1; shift
awk_args=()
while [[ $# -gt 3 ]]; do awk_args+=("$1"); shift; done
program=$1 old=$2 new=$3
figure() { bash -c "$1" 2>/dev/null | awk "${awk_args[@]}" "$program" | head -1; }
ratios=()
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then o=$(figure "$old"); n=$(figure "$new"); else n=$(figure "$new"); o=$(figure "$old"); fi
  if [[ -z "$o" || -z "$n" ]]; then echo "round $r: no figure (old '$o', new '$n')" >&2; exit 1; fi
  ratio=$(echo "$n / $o" | bc -l)
  ratios+=("$ratio")
  printf 'round %2d  old %10.1f  new %10.1f  new/old %.3f\n' "$r" "$o" "$n" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "median new/old %.3f (range %.3f-%.3f, %d rounds)\n", m, a[1], a[NR], NR}'
