#!/bin/bash
# Side by side, whole process, in alternating rounds: `corral embed` int8,
# `corral embed` fp32 (and bf16, when asked), sentence-transformers (PyTorch fp32) and, when
# onnxruntime is installed beside it, ONNX Runtime fp32 and int8 (the graph
# quantised dynamically with the settings of sentence-transformers'
# `export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)`; see
# benches/st_onnx.py), all on 2 threads with batches of 32 over the
# benchmark corpus. Prints sentences/s per round and the median ratios (with
# their range over rounds), then the fidelity table: min and mean cosine to
# PyTorch fp32 of ONNX Runtime fp32/int8 and of Corral fp32/int8, over the
# golden texts and the corpus.
#
#   benches/int8_vs_pytorch.sh [rounds]
#
# Environment: PYTHON (default /work/pytorch-tmp/bin/python: a venv with
# torch, sentence-transformers and, for the ONNX modes, onnxruntime), CORPUS
# (default ../shared/bench/corpus.txt), GOLDEN (default
# ../shared/golden/minilm_l6_v2_public.json), MODEL_DIR (default the
# fetched default model, ~/.cache/corral/models/all-MiniLM-L6-v2), CORRAL
# (default target/release/corral; build it with
# `cargo build --release -p corral-cli`), WORKERS (default 2), MODES
# (default "int8 none st onnx onnx-int8" when onnxruntime imports, else
# "int8 none st"; add "bf16" for `corral embed --quantize bf16`, "base" to
# time `CORRAL_BASE`, another build of corral such as an earlier commit's,
# in int8 beside them), FIDELITY (default 1;
# 0 skips the fidelity table). The ONNX graphs are made once under
# /tmp/st-onnx-work (delete it when done).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED" ] || SHARED=/work/shared
PYTHON=${PYTHON:-/work/pytorch-tmp/bin/python}
CORPUS=${CORPUS:-$SHARED/bench/corpus.txt}
GOLDEN=${GOLDEN:-$SHARED/golden/minilm_l6_v2_public.json}
MODEL_DIR=${MODEL_DIR:-$HOME/.cache/corral/models/all-MiniLM-L6-v2}
CORRAL=${CORRAL:-$ROOT/target/release/corral}
WORKERS=${WORKERS:-2}
if [ -z "${MODES:-}" ]; then
  if "$PYTHON" -c "import onnxruntime" 2>/dev/null; then MODES="int8 none st onnx onnx-int8"; else MODES="int8 none st"; fi
fi
FIDELITY=${FIDELITY:-1}
HELPER="$ROOT/benches/st_onnx.py"
ROUNDS=${1:-3}
N=$(grep -c . "$CORPUS")
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    if [ "$mode" = st ] || [ "$mode" = onnx ] || [ "$mode" = onnx-int8 ]; then
      backend=$mode; [ "$mode" = st ] && backend=torch
      s=$("$PYTHON" "$HELPER" speed "$backend" "$CORPUS" --model-dir "$MODEL_DIR" --threads 2 --batch 32 --runs 1 2>/dev/null \
        | grep sentences_per_second | awk '{print $2}')
    else
      bin=$CORRAL quant=$mode
      if [ "$mode" = base ]; then bin=${CORRAL_BASE:?set CORRAL_BASE to time mode base} quant=int8; fi
      t0=$(date +%s.%N)
      RUST_LOG=warn "$bin" embed --model-dir "$MODEL_DIR" --workers "$WORKERS" --quantize "$quant" < "$CORPUS" > /dev/null 2>/dev/null
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
echo "load average while measuring (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
for pair in "int8 st" "none st" "bf16 st" "int8 onnx-int8" "none onnx" "bf16 onnx" "onnx-int8 st" "int8 none" "bf16 none" "int8 bf16" "int8 base" "base st"; do
  set -- $pair
  case " $MODES " in *" $1 "*) case " $MODES " in *" $2 "*) ratio "$1" "$2" ;; esac ;; esac
done
# Fidelity: every engine's vectors against PyTorch fp32's, golden texts and
# corpus (Corral reads them as JSON Lines: the golden texts hold newlines).
if [ "$FIDELITY" = 1 ] && "$PYTHON" -c "import onnxruntime" 2>/dev/null; then
  texts=$(mktemp) c8=$(mktemp) c32=$(mktemp) cbf=$(mktemp)
  trap 'rm -f "$results" "$texts" "$c8" "$c32" "$cbf"' EXIT
  "$PYTHON" - "$GOLDEN" "$CORPUS" > "$texts" <<'PY'
import json, sys
golden = [c["text"] for c in json.load(open(sys.argv[1]))["cases"]]
corpus = [l.rstrip("\n") for l in open(sys.argv[2]) if l.strip()]
for t in golden + corpus:
    print(json.dumps({"text": t}))
PY
  RUST_LOG=warn "$CORRAL" embed --jsonl -q --model-dir "$MODEL_DIR" --workers "$WORKERS" --quantize int8 "$texts" > "$c8"
  RUST_LOG=warn "$CORRAL" embed --jsonl -q --model-dir "$MODEL_DIR" --workers "$WORKERS" --quantize none "$texts" > "$c32"
  bf=()
  case " $MODES " in *" bf16 "*)
    RUST_LOG=warn "$CORRAL" embed --jsonl -q --model-dir "$MODEL_DIR" --workers "$WORKERS" --quantize bf16 "$texts" > "$cbf"
    bf=(--corral "Corral bf16=$cbf") ;;
  esac
  "$PYTHON" "$HELPER" fidelity "$CORPUS" "$GOLDEN" --model-dir "$MODEL_DIR" \
    --corral "Corral int8=$c8" --corral "Corral fp32=$c32" "${bf[@]}" 2>/dev/null
fi
