#!/bin/bash
# `corral bench serve` with two `corral` binaries (an old build and a new
# one), alternating which goes first each round; keeps every run's report
# under OUTDIR and prints, for each mode (fp32, int8) and load point, the
# median of the old and new figures and the median new-is-better ratio with
# its range: new/old for sentences/s, old/new for p50 and p99.
#
#   benches/serve_ab.sh OUTDIR ROUNDS OLD_BIN NEW_BIN [bench serve options...]
#
# Example (1 client and 64 clients, fp32 and int8, 4 s per point):
#   benches/serve_ab.sh /tmp/ab 7 "$OLD_BIN" "$NEW_BIN" \
#     --points 1x1,64x1 --seconds 4 --warmup 1 --no-inprocess
# Both binaries must know `bench serve --quantize` and `--points`.
set -euo pipefail
out=$1 rounds=$2 old=$3 new=$4; shift 4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then order="old new"; else order="new old"; fi
  for which in $order; do
    bin=$old; [[ $which == new ]] && bin=$new
    "$bin" bench serve "$@" > "$out/r$r-$which.txt" 2>/dev/null
  done
  echo "round $r done $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)" >&2
done
python3 - "$out" "$rounds" <<'EOF'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
row = re.compile(r'\| (corral serve(?: --quantize int8)?) \| (\d+) × (\d+) \| ([\d.]+) \| ([\d.]+) ms \| ([\d.]+) ms')
def figures(path):
    f = {}
    for line in open(path):
        m = row.match(line)
        if m:
            mode = 'int8' if 'int8' in m.group(1) else 'fp32'
            point = f'{m.group(2)}x{m.group(3)}'
            for name, g in (('sentences/s', 4), ('p50 ms', 5), ('p99 ms', 6)):
                f[(mode, point, name)] = float(m.group(g))
    return f
old, new, ratio = {}, {}, {}
for r in range(1, rounds + 1):
    o, n = figures(f'{out}/r{r}-old.txt'), figures(f'{out}/r{r}-new.txt')
    for k in o.keys() & n.keys():
        old.setdefault(k, []).append(o[k])
        new.setdefault(k, []).append(n[k])
        ratio.setdefault(k, []).append(n[k] / o[k] if k[2] == 'sentences/s' else o[k] / n[k])
med = statistics.median
print('| mode | clients × sentences | figure | old (median) | new (median) | new better by (median) | range | rounds |')
print('|---|---|---|---|---|---|---|---|')
for k in sorted(ratio):
    v = ratio[k]
    print(f'| {k[0]} | {k[1]} | {k[2]} | {med(old[k]):.1f} | {med(new[k]):.1f} | {med(v):.3f} | {min(v):.3f}–{max(v):.3f} | {len(v)} |')
EOF
