#!/usr/bin/env python3
"""Writes four tiny random cross-encoder / sequence-classifier fixtures and
their PyTorch and sentence-transformers golden output (issue #21).

Each lives in crates/corral-embed/tests/data/<name>/ and is committed: CI does
not run this script (it has no torch); the tests read the files.

    tiny-bert-rerank/    BertForSequenceClassification, num_labels 1 (an
                         ms-marco-MiniLM-style cross-encoder); its config.json
                         asks for a sigmoid the way CrossEncoder reads it:
                         "sentence_transformers": {"activation_fn":
                         "torch.nn.modules.activation.Sigmoid"}
    tiny-xlmr-rerank/    XLMRobertaForSequenceClassification, num_labels 1 (a
                         bge-reranker-style model), no activation key: the
                         CrossEncoder default (sigmoid for one label) applies
    tiny-bert-classify/  BertForSequenceClassification, num_labels 3
    tiny-xlmr-classify/  XLMRobertaForSequenceClassification, num_labels 3
                         (both with id2label {0: negative, 1: neutral,
                         2: positive})

All four: hidden 32, 2 layers, 4 heads, intermediate 64, 64 tokens at most
(BERT: 64 positions; XLM-R: 66 = 64 + padding_idx 1 + 1, as tiny-xlmr).
Files in each directory:

    config.json             as PreTrainedModel.save_pretrained writes it
                            (architectures, id2label/label2id, num_labels)
    model.safetensors       random fp32 weights (fixed seed), names as
                            save_pretrained writes them: `bert.*` + pooler +
                            `classifier.{weight,bias}` for BERT; `roberta.*`
                            (no pooler) + `classifier.dense.*` +
                            `classifier.out_proj.*` for XLM-R
    tokenizer.json          BERT: a small uncased WordPiece tokenizer built
                            here (the same vocabulary as the Rust tests' tiny
                            BERT in tests/common/mod.rs, plus a few words and
                            non-ASCII characters), pair template
                            `[CLS] A [SEP] B [SEP]` with type ids 0…0 1…1.
                            XLM-R: tiny-xlmr's tokenizer.json byte for byte
                            (pair template `<s> A </s> </s> B </s>`, all type
                            ids 0)
    tokenizer_config.json   as the fast tokenizer's save_pretrained writes it;
    special_tokens_map.json model_max_length 64. CrossEncoder (and
                            AutoTokenizer) read the length limit from here: a
                            directory without it truncates nowhere, or at
                            max_position_embeddings (ST caps it there), which
                            overflows XLM-R's positions
    golden.json             see below

golden.json: the versions used, the truncation strategy, and for each
query/document pair (ASCII and not, an empty document, and three pairs longer
than 64 tokens):
    ids, type_ids     what the HF tokenizer loaded from the directory gives
                      for the pair with truncation=True (= "longest_first",
                      which is also what CrossEncoder passes), max_length 64
    only_second       the same pair truncated with "only_second" where that
                      gives something else ({ids, type_ids, logits}), or
                      null where only_second cannot truncate (the query
                      alone is too long; HF raises an error there)
    logits            the model's raw logits from PyTorch, fp32, the pair run
                      alone (batch of one, no padding)
    ce_predict        CrossEncoder(dir).predict(pairs) with its default
                      activation (batched as ST does): sigmoid(logit) for
                      the rerankers, the raw logits for the classifiers
  classifiers also have
    softmax           softmax over the labels (= predict(apply_softmax=True))
    label             id2label of the arg max
  and single texts ("texts": text, ids, type_ids, logits, softmax, label), as
  a text-classification pipeline would score them.

How CrossEncoder (sentence-transformers 5.x, cross_encoder/model.py) picks
the activation applied in predict(), first match wins:
  1. the activation_fn argument of CrossEncoder(...) or of predict(...);
  2. with modules.json (an ST >= 5 save): config_sentence_transformers.json's
     "activation_fn" (CrossEncoder._parse_model_config);
  3. config.json's "sentence_transformers": {"activation_fn": "<dotted path>"}
     (ST 4.x saves; get_default_activation_fn);
  4. config.json's "sbert_ce_default_activation_function" (ST < 4 saves);
  5. otherwise nn.Sigmoid() when num_labels == 1, else nn.Identity().
A dotted path is only honoured when it starts with "torch." (or with
trust_remote_code). So a one-label reranker gets a sigmoid unless its config
names torch.nn.modules.linear.Identity; raw logits are what TEI returns with
raw_scores=true.

Truncation: ST's Transformer.preprocess calls the tokenizer with a list of
[query, document] pairs and {"padding": True, "truncation": "longest_first"},
max_length left to tokenizer.model_max_length, which ST caps at
config.max_position_embeddings (that cap alone would be 66 for XLM-R: hence
tokenizer_config.json's 64).

Regenerate (offline; nothing is downloaded):

    HF_HUB_OFFLINE=1 /work/venv-fixtures/bin/python scripts/make_tiny_cross_encoders.py

Any Python with torch, transformers (>= 4.40, < 5), tokenizers and
sentence-transformers (>= 4) will do. The output depends only on the seeds and
the library versions; rerunning with the same versions gives the same files.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
    XLMRobertaTokenizerFast,
)

SEED = 20261206
DATA = Path(__file__).resolve().parent.parent / "crates" / "corral-embed" / "tests" / "data"
XLMR_TOKENIZER = DATA / "tiny-xlmr" / "tokenizer.json"
MAX_TOKENS = 64
XLMR_PADDING_IDX = 1
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
SIGMOID = "torch.nn.modules.activation.Sigmoid"
KEEP = {
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "golden.json",
}

LONG_DOC = " ".join(["Embeddings turn text into vectors, the quick brown fox jumps over the lazy dog."] * 6)
MID_QUERY = " ".join(["The quick brown fox jumps over the lazy dog."] * 4)
MID_DOC = " ".join(["Hello world, this is a small multilingual test corpus for a tiny model."] * 3)
LONG_QUERY = " ".join(["Hello world, this is a small multilingual test corpus for a tiny model."] * 6)

# (query, document). The last three are longer than 64 tokens with both
# tokenizers: a short query with a long document (longest_first and
# only_second agree), a query and a document of ~40 tokens each (they
# differ: longest_first cuts both), and a query longer than the limit alone
# (only_second cannot truncate).
PAIRS = [
    ("what is a cat", "the cat sat on the mat"),
    ("hello world", "hello world"),
    ("how fast does the dog run", "a slow dog is not fast"),
    ("The quick brown fox", "jumps over the lazy dog."),
    ("Grüße aus Köln", "Der schnelle braune Fuchs springt über den faulen Hund."),
    ("Ça va?", "Un café au lait et une crème brûlée, s'il vous plaît."),
    ("Привет, мир!", "Быстрая коричневая лиса прыгает через ленивую собаку."),
    ("東京", "日本語のテキストを少しだけ書きます。東京は大きな都市です。"),
    ("emoji 🙂", "서울은 한국의 수도입니다."),
    ("a query with an empty document", ""),
    ("what do embeddings do?", LONG_DOC),
    (MID_QUERY.strip(), MID_DOC.strip()),
    (LONG_QUERY, "the cat sat on the mat"),
]

# Single texts for the classifiers.
TEXTS = [
    "hello world",
    "the dog runs fast",
    "Grüße aus Köln",
    "Привет, мир!",
    "日本語のテキスト",
    "",
    LONG_DOC,
]

# The Rust tests' tiny BERT vocabulary (tests/common/mod.rs `vocab()`), then
# some words of PAIRS and a few non-ASCII characters (uncased BERT strips
# accents, and splits CJK characters one by one); the rest falls back to
# `##x` pieces or [UNK].
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_WORDS = [
    "the", "cat", "sat", "on", "mat", "hello", "world", "dog", "runs", "fast", "slow", "is",
    "a", "of", "and", "in", "to", "it",
]
BERT_EXTRA_WORDS = [
    "what", "how", "does", "run", "not", "quick", "brown", "fox", "jumps", "over", "lazy",
    "embeddings", "turn", "text", "into", "vectors", "query", "with", "an", "empty",
    "document", "do", "this", "small", "test", "model", "tiny", "corpus", "multilingual", "for",
    "koln", "gruße", "uber", "cafe", "creme", "brulee",
]
BERT_EXTRA_CHARS = list("äöüßçéèêàñ") + list("приветмиркосбая") + list("日本語東京大都市") + ["##ß"]


def bert_vocab() -> list:
    v = list(BERT_SPECIALS)
    for w in BERT_WORDS:
        if w not in v:
            v.append(w)
    for c in [chr(x) for x in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]:
        if c not in v:
            v.append(c)
        v.append(f"##{c}")
    for p in ".,!?;:'\"()[]{}<>-_/\\@#$%^&*+=|~`":
        v.append(p)
    for t in BERT_EXTRA_WORDS + BERT_EXTRA_CHARS:
        if t not in v:
            v.append(t)
    return v


def bert_tokenizer() -> BertTokenizerFast:
    vocab = {t: i for i, t in enumerate(bert_vocab())}
    raw = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    raw.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece(prefix="##")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    raw.add_special_tokens(BERT_SPECIALS)
    return BertTokenizerFast(
        tokenizer_object=raw,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=True,
        model_max_length=MAX_TOKENS,
    )


def xlmr_tokenizer() -> XLMRobertaTokenizerFast:
    raw = Tokenizer.from_file(str(XLMR_TOKENIZER))
    return XLMRobertaTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_TOKENS,
    )


def bert_model(vocab: int, num_labels: int, sentence_transformers: dict | None):
    extra = {"id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}} if num_labels > 1 else {}
    if sentence_transformers is not None:
        extra["sentence_transformers"] = sentence_transformers
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        max_position_embeddings=MAX_TOKENS,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        num_labels=num_labels,
        architectures=["BertForSequenceClassification"],
        **extra,
    )
    return BertForSequenceClassification(config)


def xlmr_model(vocab: int, num_labels: int, sentence_transformers: dict | None):
    extra = {"id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}} if num_labels > 1 else {}
    if sentence_transformers is not None:
        extra["sentence_transformers"] = sentence_transformers
    config = XLMRobertaConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        max_position_embeddings=MAX_TOKENS + XLMR_PADDING_IDX + 1,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=XLMR_PADDING_IDX,
        bos_token_id=0,
        eos_token_id=2,
        position_embedding_type="absolute",
        num_labels=num_labels,
        architectures=["XLMRobertaForSequenceClassification"],
        **extra,
    )
    return XLMRobertaForSequenceClassification(config)


# name, family, num_labels, config.json "sentence_transformers" entry, seed offset
MODELS = [
    ("tiny-bert-rerank", "bert", 1, {"activation_fn": SIGMOID}, 1),
    ("tiny-xlmr-rerank", "xlmr", 1, None, 2),
    ("tiny-bert-classify", "bert", 3, None, 3),
    ("tiny-xlmr-classify", "xlmr", 3, None, 4),
]


def randomise(model: torch.nn.Module, seed: int) -> None:
    """As make_tiny_xlmr.py: larger-than-init random weights, so that every
    part of the forward pass moves the output well past the tests'
    tolerance; the head at 0.3 keeps the logits near ±1, where a sigmoid is
    not flat."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def encode(tok, a, b=None, strategy="longest_first"):
    """The HF encoding of a text or pair as lists, or None where the strategy
    cannot truncate it (HF raises)."""
    # Always as a batch of one, as CrossEncoder calls it: `tok(q, "")` alone
    # takes the empty document for "no pair" and gives `[CLS] q [SEP]`,
    # while a batch (and the tokenizers library's pair encoding) gives
    # `[CLS] q [SEP] [SEP]`.
    batch = [a] if b is None else [[a, b]]
    try:
        enc = tok(batch, truncation=strategy, max_length=MAX_TOKENS)
    except Exception:  # only_second with a first text too long alone
        return None
    ids = enc["input_ids"][0]
    # XLM-R's tokenizer does not return type ids (model_input_names); they are
    # all 0 there (type_vocab_size 1).
    types = enc["token_type_ids"][0] if "token_type_ids" in enc else [0] * len(ids)
    return ids, types


def run_alone(model, ids, types) -> list:
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            token_type_ids=torch.tensor([types]),
        ).logits[0]
    return out.tolist()


def softmax(logits: list) -> list:
    return torch.softmax(torch.tensor(logits), dim=0).tolist()


def write_model(name: str, family: str, num_labels: int, st: dict | None, seed: int) -> None:
    out = DATA / name
    tok = bert_tokenizer() if family == "bert" else xlmr_tokenizer()
    vocab = len(tok)
    build = bert_model if family == "bert" else xlmr_model
    model = build(vocab, num_labels, st).eval()
    randomise(model, seed)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if family == "xlmr":
        shutil.copyfile(XLMR_TOKENIZER, out / "tokenizer.json")
    for f in out.iterdir():
        if f.name not in KEEP:
            f.unlink()

    # Everything below reads the directory back, as a user of it would.
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tok.model_max_length == MAX_TOKENS
    model = type(model).from_pretrained(out, local_files_only=True).eval()
    with safe_open(out / "model.safetensors", "pt") as f:
        names = sorted(f.keys())

    pairs = []
    for q, d in PAIRS:
        ids, types = encode(tok, q, d)
        logits = run_alone(model, ids, types)
        entry = {"query": q, "document": d, "ids": ids, "type_ids": types, "logits": logits}
        alt = encode(tok, q, d, "only_second")
        if alt is None:
            entry["only_second"] = None
        elif alt[0] != ids:
            entry["only_second"] = {"ids": alt[0], "type_ids": alt[1], "logits": run_alone(model, *alt)}
        if num_labels > 1:
            entry["softmax"] = softmax(logits)
            entry["label"] = LABELS[max(range(num_labels), key=lambda i: logits[i])]
        pairs.append(entry)

    # The reference checked against itself: the pairs padded in one batch
    # give the same logits as alone.
    with torch.no_grad():
        enc = tok([q for q, _ in PAIRS], [d for _, d in PAIRS], truncation=True,
                  max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        batch = model(**enc).logits
    for p, b in zip(pairs, batch):
        assert torch.allclose(torch.tensor(p["logits"]), b, atol=1e-5), p["query"]

    # The fixture's own coverage.
    lens = [len(p["ids"]) for p in pairs]
    assert lens[-3:] == [MAX_TOKENS] * 3 and max(lens[:-3]) < MAX_TOKENS, lens
    assert "only_second" not in pairs[-3], "short query, long document: the strategies agree"
    assert pairs[-2].get("only_second"), "two long halves: the strategies differ"
    assert pairs[-1]["only_second"] is None, "a query over the limit: only_second fails"
    unk = tok.unk_token_id
    assert any(unk in p["ids"] for p in pairs), "some pair must hit the unknown token"

    # sentence-transformers from the same directory, with its defaults.
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(out), device="cpu", local_files_only=True)
    assert ce.max_seq_length == MAX_TOKENS, ce.max_seq_length
    activation = type(ce.activation_fn).__name__
    want = "Sigmoid" if num_labels == 1 else "Identity"
    assert activation == want, (name, activation)
    feats = ce.preprocess([[q, d] for q, d in PAIRS])
    for p, row, mask in zip(pairs, feats["input_ids"].tolist(), feats["attention_mask"].tolist()):
        assert row[: sum(mask)] == p["ids"], ("CrossEncoder tokenizes otherwise", p["query"])
    preds = ce.predict([[q, d] for q, d in PAIRS], convert_to_numpy=True)
    soft = ce.predict([[q, d] for q, d in PAIRS], apply_softmax=True, convert_to_numpy=True)
    for p, s, sm in zip(pairs, preds.tolist(), soft.tolist()):
        p["ce_predict"] = s
        if num_labels == 1:
            assert abs(s - torch.sigmoid(torch.tensor(p["logits"][0])).item()) < 1e-5
        else:
            assert max(abs(x - y) for x, y in zip(sm, p["softmax"])) < 1e-5

    meta = {
        "generator": "scripts/make_tiny_cross_encoders.py",
        "seed": seed,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "sentence_transformers": __import__("sentence_transformers").__version__,
        "architecture": model.config.architectures[0],
        "num_labels": num_labels,
        "id2label": {str(k): v for k, v in model.config.id2label.items()},
        "max_tokens": MAX_TOKENS,
        "truncation": "longest_first",
        "ce_activation": activation,
        "weight_names": names,
        "pairs": pairs,
    }
    if num_labels > 1:
        texts = []
        for t in TEXTS:
            ids, types = encode(tok, t)
            logits = run_alone(model, ids, types)
            texts.append({
                "text": t, "ids": ids, "type_ids": types, "logits": logits,
                "softmax": softmax(logits),
                "label": LABELS[max(range(num_labels), key=lambda i: logits[i])],
            })
        assert len(texts[-1]["ids"]) == MAX_TOKENS
        meta["texts"] = texts
    with open(out / "golden.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
        f.write("\n")
    sizes = {f.name: f.stat().st_size for f in sorted(out.iterdir())}
    assert max(sizes.values()) < 1_000_000, sizes
    print(f"wrote {out} ({sum(sizes.values())} bytes, vocab {vocab}, {activation})", file=sys.stderr)


def main() -> None:
    torch.manual_seed(SEED)
    for name, family, num_labels, st, offset in MODELS:
        write_model(name, family, num_labels, st, SEED + offset)


if __name__ == "__main__":
    main()
