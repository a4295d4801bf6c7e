#!/bin/bash
# Side by side, whole process, in alternating rounds: `corral embed` int8,
# `corral embed` fp32 and sentence-transformers (PyTorch fp32, 2 threads,
# batch 32) over the benchmark corpus. Prints sentences/s per round and the
# median ratios (with their range over rounds).
#
#   benches/int8_vs_pytorch.sh [rounds]
#
# Environment: PYTHON (default ../venv-inf/bin/python beside the repo's
# parent, i.e. /work/venv-inf), CORPUS (default ../shared/bench/corpus.txt),
# CORRAL (default target/release/corral; build it with
# `cargo build --release -p corral-cli`), WORKERS (default 2), MODES
# (default "int8 none st"; add "base" to time `CORRAL_BASE`, another build
# of corral such as an earlier commit's, in int8 beside them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED" ] || SHARED=/work/shared
PYTHON=${PYTHON:-$ROOT/../venv-inf/bin/python}
[ -x "$PYTHON" ] || PYTHON=/work/venv-inf/bin/python
CORPUS=${CORPUS:-$SHARED/bench/corpus.txt}
CORRAL=${CORRAL:-$ROOT/target/release/corral}
WORKERS=${WORKERS:-2}
MODES=${MODES:-int8 none st}
ROUNDS=${1:-3}
N=$(grep -c . "$CORPUS")
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    if [ "$mode" = st ]; then
      s=$(HF_HUB_OFFLINE=1 "$PYTHON" "$SHARED/bench/st_baseline.py" "$CORPUS" --threads 2 --batch 32 --runs 1 2>/dev/null \
        | grep sentences_per_second | awk '{print $2}')
    else
      bin=$CORRAL quant=$mode
      if [ "$mode" = base ]; then bin=${CORRAL_BASE:?set CORRAL_BASE to time mode base} quant=int8; fi
      t0=$(date +%s.%N)
      RUST_LOG=warn "$bin" embed --workers "$WORKERS" --quantize "$quant" < "$CORPUS" > /dev/null 2>/dev/null
      t1=$(date +%s.%N)
      s=$(echo "$N / ($t1 - $t0)" | bc -l)
    fi
    printf "round %s %s %.1f\n" "$r" "$mode" "$s" | tee -a "$results"
  done
done
# Ratios per round, then their median and range.
ratio() {
  awk -v a="$1" -v b="$2" '
    $3 == a { x[$2] = $4 } $3 == b { y[$2] = $4 }
    END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$results" | sort -g |
    awk -v name="$1/$2" '{ v[NR] = $1 } END { if (NR) printf "%s: median %.2fx (range %.2f-%.2f, %d rounds)\n", name, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}
for pair in "int8 st" "none st" "int8 none" "int8 base" "base st"; do
  set -- $pair
  case " $MODES " in *" $1 "*) case " $MODES " in *" $2 "*) ratio "$1" "$2" ;; esac ;; esac
done
