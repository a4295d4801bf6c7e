#!/usr/bin/env python3
"""PyTorch (sentence-transformers) and ONNX Runtime on one model directory,
for benches/int8_vs_pytorch.sh: speed over the corpus, and the fidelity of
each backend (and of Corral's own vectors) to PyTorch fp32.

    python st_onnx.py speed BACKEND CORPUS [--model-dir D] [--work W] [--threads 2] [--batch 32] [--runs 1]
    python st_onnx.py fidelity CORPUS GOLDEN_JSON [--model-dir D] [--work W] [--corral NAME=FILE.jsonl ...]

BACKEND is `torch` (sentence-transformers on PyTorch fp32), `onnx` (ONNX
Runtime fp32) or `onnx-int8` (ONNX Runtime on the graph quantised
dynamically with the settings of sentence-transformers'
`export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)`). The
ONNX graphs are made here (see `export_onnx`: optimum, which
sentence-transformers' `backend="onnx"` needs, does not import beside
transformers 5), written under W (default /tmp/st-onnx-work, never the
model directory), once, and reused; ONNX Runtime runs them inside the same
encode loop as sentence-transformers' (sorted by length, batches of 32,
mean pooling, L2 normalisation).

`speed` encodes the whole corpus once untimed (a warm-up), then `--runs`
times; prints `sentences_per_second: X` (the median), as
shared/bench/st_baseline.py does. `fidelity` prints, for every ONNX
backend and every `--corral NAME=FILE` (the JSON lines of `corral embed`
over the same texts, golden texts first, then the corpus), the minimum and
mean cosine to PyTorch fp32 over the golden texts and over the corpus.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_MODEL = os.path.expanduser("~/.cache/corral/models/all-MiniLM-L6-v2")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def export_onnx(model_dir, path):
    """The model's encoder as an ONNX graph at `path` (input ids, attention
    mask, token types -> last hidden state), from a plain PyTorch BERT
    forward written here over the directory's own weights. (optimum, which
    sentence-transformers' `backend="onnx"` exports through, does not import
    beside transformers 5, and transformers 5's BertModel does not trace to
    a correct graph; this forward is checked against sentence-transformers
    by the fidelity rows.)"""
    import torch
    from safetensors.torch import load_file

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = {k.removeprefix("bert."): v for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    heads, eps = cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)
    hidden = cfg["hidden_size"]

    class Bert(torch.nn.Module):
        def __init__(self):
            super().__init__()
            # Buffers, so the exporter writes the weights as initializers
            # (which ONNX Runtime's quantiser quantises), not as constants.
            for k, v in w.items():
                self.register_buffer(k.replace(".", "__"), v.float())

        def forward(self, input_ids, attention_mask, token_type_ids):
            g = lambda p: getattr(self, p.replace(".", "__"))
            ln = lambda x, p: torch.nn.functional.layer_norm(x, (hidden,), g(p + ".weight"), g(p + ".bias"), eps)
            lin = lambda x, p: torch.nn.functional.linear(x, g(p + ".weight"), g(p + ".bias"))
            pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
            x = g("embeddings.word_embeddings.weight")[input_ids]
            x = x + g("embeddings.position_embeddings.weight")[pos]
            x = x + g("embeddings.token_type_embeddings.weight")[token_type_ids]
            x = ln(x, "embeddings.LayerNorm")
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e9
            b, t = input_ids.shape
            h = hidden
            split = lambda y: y.reshape(b, t, heads, h // heads).transpose(1, 2)
            for i in range(cfg["num_hidden_layers"]):
                p = f"encoder.layer.{i}."
                q = split(lin(x, p + "attention.self.query"))
                k = split(lin(x, p + "attention.self.key"))
                v = split(lin(x, p + "attention.self.value"))
                a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(h // heads) + bias, -1) @ v
                a = a.transpose(1, 2).reshape(b, t, h)
                x = ln(lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
                f = torch.nn.functional.gelu(lin(x, p + "intermediate.dense"))
                x = ln(lin(f, p + "output.dense") + x, p + "output.LayerNorm")
            return x

    ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in names + ["last_hidden_state"]}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(
        Bert(), (ids, mask, torch.zeros_like(ids)), path, input_names=names,
        output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False,
    )


def quantize_avx512_vnni(src, dst):
    """Dynamic int8 quantisation of `src` into `dst` with the settings of
    sentence-transformers' `export_dynamic_quantized_onnx_model(model,
    "avx512_vnni", ...)` (optimum's `AutoQuantizationConfig.avx512_vnni(
    is_static=False)`): every operator ONNX Runtime quantises dynamically,
    int8 weights per channel and symmetric, uint8 activations asymmetric, no
    reduced range, the QOperator format."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    quantize_dynamic(
        src, dst, op_types_to_quantize=list(IntegerOpsRegistry.keys()), per_channel=True,
        reduce_range=False, weight_type=QuantType.QInt8,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "EnableSubgraph": False,
                       "ForceSymmetric": False},
    )


class OnnxEncoder:
    """sentence-transformers' encode() for an ONNX graph on ONNX Runtime:
    texts sorted by length, batches tokenised (padding to the batch's
    longest, truncation at the model's limit), the graph, mean pooling,
    L2 normalisation."""

    def __init__(self, model_dir, path, threads):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        st = os.path.join(model_dir, "sentence_bert_config.json")
        self.max_len = json.load(open(st)).get("max_seq_length", 256) if os.path.exists(st) else 256

    def encode(self, texts, batch_size=32, normalize_embeddings=True):
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = [None] * len(texts)
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            enc = self.tok([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_len,
                           return_tensors="np")
            feed = {n: enc[n].astype(np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
            h = self.session.run(None, feed)[0]
            m = feed["attention_mask"][..., None].astype(h.dtype)
            v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            if normalize_embeddings:
                v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            for j, i in enumerate(idx):
                out[i] = v[j]
        return np.stack(out)


def load(backend, model_dir, work, threads):
    import torch

    torch.set_num_threads(threads)
    if backend == "torch":
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(model_dir, device="cpu")
    fp32 = os.path.join(work, "model.onnx")
    if not os.path.exists(fp32):
        export_onnx(model_dir, fp32)
    if backend == "onnx":
        return OnnxEncoder(model_dir, fp32, threads)
    if backend != "onnx-int8":
        sys.exit(f"unknown backend {backend!r}")
    int8 = os.path.join(work, "model_qint8_avx512_vnni.onnx")
    if not os.path.exists(int8):
        quantize_avx512_vnni(fp32, int8)
    return OnnxEncoder(model_dir, int8, threads)


def speed(a):
    model = load(a.backend, a.model_dir, a.work, a.threads)
    texts = read_lines(a.corpus)
    model.encode(texts, batch_size=a.batch, normalize_embeddings=True)
    rates = []
    for i in range(a.runs):
        t = time.perf_counter()
        model.encode(texts, batch_size=a.batch, normalize_embeddings=True)
        dt = time.perf_counter() - t
        rates.append(len(texts) / dt)
        print(f"run {i + 1}: {len(texts)} sentences in {dt:.2f} s = {rates[-1]:.1f}/s", file=sys.stderr)
    print(f"backend {a.backend}, threads {a.threads}, batch {a.batch}", file=sys.stderr)
    print(f"sentences_per_second: {statistics.median(rates):.1f}")


def cosines(a, b):
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def fidelity(a):
    with open(a.golden, encoding="utf-8") as f:
        golden = [c["text"] for c in json.load(f)["cases"]]
    corpus = read_lines(a.corpus)
    sets = {"golden": golden, "corpus": corpus}
    ref = load("torch", a.model_dir, a.work, a.threads)
    want = {k: ref.encode(v, batch_size=32, normalize_embeddings=True) for k, v in sets.items()}
    rows = []
    for backend in ("onnx", "onnx-int8"):
        m = load(backend, a.model_dir, a.work, a.threads)
        for k, v in sets.items():
            rows.append((f"ONNX Runtime {backend}", k, cosines(m.encode(v, batch_size=32), want[k])))
    for spec in a.corral:
        name, path = spec.split("=", 1)
        with open(path, encoding="utf-8") as f:
            got = [json.loads(line)["embedding"] for line in f if line.strip()]
        if len(got) != len(golden) + len(corpus):
            sys.exit(f"{path}: {len(got)} vectors, want {len(golden) + len(corpus)} (golden, then corpus)")
        rows.append((name, "golden", cosines(got[: len(golden)], want["golden"])))
        rows.append((name, "corpus", cosines(got[len(golden) :], want["corpus"])))
    print("| engine | texts | count | min cosine to PyTorch fp32 | mean |")
    print("|---|---|---|---|---|")
    for name, k, c in rows:
        print(f"| {name} | {k} | {len(c)} | {c.min():.4f} | {c.mean():.5f} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("backend", choices=["torch", "onnx", "onnx-int8"])
    s.add_argument("corpus")
    s.add_argument("--runs", type=int, default=1)
    s.add_argument("--batch", type=int, default=32)
    f = sub.add_parser("fidelity")
    f.add_argument("corpus")
    f.add_argument("golden")
    f.add_argument("--corral", action="append", default=[], metavar="NAME=FILE")
    for p in (s, f):
        p.add_argument("--model-dir", default=DEFAULT_MODEL)
        p.add_argument("--work", default="/tmp/st-onnx-work")
        p.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    speed(a) if a.cmd == "speed" else fidelity(a)


if __name__ == "__main__":
    main()
