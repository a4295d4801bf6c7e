#!/bin/bash
# Side-by-side `corral-bench route` of two corral-bench binaries (or, for
# commits before corral-bench existed, `corral bench route`: give such a
# binary as OLD and set OLD_SUBCOMMAND='bench route'), alternating the
# order each round; prints each pair's routed_per_second and the median
# new/old ratio with its range.
#
#   benches/route_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [extra bench args]
#
# Build OLD from the commit to compare with, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release -p corral-bench)
set -euo pipefail
old=$1 new=$2 rounds=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
old_cmd=${OLD_SUBCOMMAND:-route}
rate() {
  local bin=$1; shift
  local cmd=route
  [ "$bin" = "$old" ] && cmd=$old_cmd
  # shellcheck disable=SC2086 # the subcommand may be two words
  RUST_LOG=warn "$bin" $cmd "$@" 2>/dev/null | awk '/^routed_per_second:/ {print $2}'
}
ratios=()
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then o=$(rate "$old" "$@"); n=$(rate "$new" "$@"); else n=$(rate "$new" "$@"); o=$(rate "$old" "$@"); fi
  ratio=$(echo "$n / $o" | bc -l)
  ratios+=("$ratio")
  printf 'round %2d  old %9d  new %9d  new/old %.3f\n' "$r" "$o" "$n" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "median new/old %.3f (range %.3f-%.3f, %d rounds)\n", m, a[1], a[NR], NR}'
