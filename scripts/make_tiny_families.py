#!/usr/bin/env python3
"""Writes the tiny random MPNet, NomicBert, ModernBERT, Qwen3 and GTE test
fixtures and their PyTorch golden output.

Each fixture lives in crates/corral-embed/tests/data/tiny-<family>/ and is
committed: CI does not run this script (it has no torch); the tests read the
files.

    tiny-mpnet      MPNet: hidden 32, 2 layers, 4 heads, intermediate 64,
                    66 positions (64 tokens past padding index 1), the
                    relative position bias over 32 buckets; config.json and
                    weights as MPNetModel writes them (bare names); a BERT-style
                    word-piece tokenizer with MPNet's specials (<s> <pad> </s>
                    <unk> at 0..3, <mask> last), <s> $A </s>; 1_Pooling: mean
    tiny-splade     SPLADE: a BertForMaskedLM (hidden 32, 2 layers, 4 heads,
                    intermediate 64, 64 positions, the decoder tied to the word
                    embeddings) with the tokenizer of tiny-bert-rerank, saved by
                    sentence-transformers' SparseEncoder (MLMTransformer +
                    SpladePooling max over relu); its golden.json has, per
                    text, the ids and SparseEncoder.encode's nonzero entries
                    (indices ascending, values)
    tiny-nomic      NomicBert: hidden 32, 2 layers, 4 heads, SwiGLU 48, rotary
                    (base 1000), post-norm; config.json and weight names in the
                    layout of the hub's nomic-embed-text-v1.5 (n_embd, n_head,
                    encoder.layers.N.attn.Wqkv, mlp.fc11/fc12/fc2, norm1/norm2,
                    emb_ln), the BERT word-piece tokenizer of tiny-bert-rerank;
                    1_Pooling: mean
    tiny-modernbert ModernBERT: hidden 32, 2 layers, 4 heads, GeGLU 48, no
                    biases; layer 0 global (rope theta 160000), layer 1 local
                    (a window of 8 tokens, rope theta 10000), so the longer
                    texts reach past the window; config.json in the hub's
                    layout (global_rope_theta, local_attention, ...), weights as
                    ModernBertModel.save_pretrained writes them (bare names);
                    a byte-level BPE tokenizer trained here, [CLS] $A [SEP];
                    1_Pooling: cls
    tiny-qwen3      Qwen3 decoder: hidden 32, 2 layers, 4 query heads over 2
                    key-value heads (grouped), head_dim 8, SwiGLU 48, RMSNorm,
                    rotary; weights under `model.` as Qwen3-Embedding ships
                    them; a byte-level BPE tokenizer trained here whose
                    post-processor appends <|endoftext|> (as
                    Qwen3-Embedding's does); 1_Pooling: lasttoken
    tiny-gte        the new GTE (model_type "new"): hidden 32, 2 layers, 4
                    heads, gated MLP 48, rotary base 1000 under NTK scaling by
                    2, type_vocab_size 2; made and run by the hub's remote code
                    (Alibaba-NLP/new-impl's modeling.py and configuration.py,
                    which are not in transformers: give their directory with
                    --gte-code DIR; they are never committed); 1_Pooling: cls

golden.json (per fixture): the versions used, max_tokens, and for each text
(ASCII and not, the empty text, one longer than max_tokens):
    ids      what transformers' fast tokenizer over tokenizer.json gives
             with truncation=True, max_length=max_tokens (as
             sentence-transformers calls it)
    mean, cls, last
             the last hidden state pooled (mean over the real tokens, the
             first token, the last real token), fp32, not normalised, each
             text run alone (a batch of one, no padding)
and, to show what padding does in PyTorch, for the whole list of texts
run as one padded batch:
    batch_right_last, batch_left_last
             last-token vectors of the batch padded on the right (the last
             real token picked by the mask) and on the left (the last
             column) — the two ways Qwen3-Embedding is run
    batch_mean
             mean over the real tokens of the right-padded batch

PyTorch runs transformers' own model classes, loaded from the directory just
written (from_pretrained), so the golden output is what a user of
transformers gets from these files: for NomicBert this goes through
transformers' conversion of the hub's weight names.

Regenerate (offline; nothing is downloaded):

    PYTHONPATH=/path/to/torch-and-transformers HF_HUB_OFFLINE=1 \\
        python3 scripts/make_tiny_families.py

    (tiny-gte: add `gte --gte-code /tmp/gte-ref`, the directory holding
    new-impl's modeling.py and configuration.py.)

Needs torch and transformers >= 5 (its NomicBert); tokenizers and
safetensors; sentence-transformers >= 5 (its SparseEncoder) for tiny-splade. The output depends only on the seed and the library versions.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import safetensors.torch  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    ModernBertConfig,
    ModernBertModel,
    MPNetConfig,
    MPNetModel,
    NomicBertConfig,
    NomicBertModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3Model,
)

SEED = 20261206
DATA = Path(__file__).resolve().parent.parent / "crates" / "corral-embed" / "tests" / "data"
BERT_TOKENIZER = DATA / "tiny-bert-rerank" / "tokenizer.json"
MAX_TOKENS = 64

LONG = " ".join(["Embeddings turn text into vectors, the quick brown fox jumps over the lazy dog."] * 6)
TEXTS = [
    "hello world",
    "the dog runs fast",
    "The quick brown fox jumps over the lazy dog.",
    "Grüße aus Köln",
    "Привет, мир!",
    "日本語のテキスト",
    "emoji 🙂 and a café",
    "",
    LONG,
]

# The text the byte-level BPE tokenizers are trained on (ASCII and not).
CORPUS = [
    "hello world, the cat sat on the mat and the dog runs fast",
    "the quick brown fox jumps over the lazy dog",
    "embeddings turn text into vectors for search and retrieval",
    "Grüße aus Köln, der schnelle braune Fuchs springt über den faulen Hund",
    "Привет, мир! Быстрая коричневая лиса прыгает через ленивую собаку",
    "日本語のテキストを少しだけ書きます。東京は大きな都市です。",
    "un café au lait et une crème brûlée, s'il vous plaît",
    "emoji 🙂 query: passage: search_query: search_document:",
] * 4


def versions() -> dict:
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": sys.version.split()[0],
    }


def fresh(name: str) -> Path:
    out = DATA / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_pooling(out: Path, mode: str) -> None:
    """modules.json and 1_Pooling/config.json with one pooling mode on."""
    write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
    )
    modes = ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken"]
    cfg = {"word_embedding_dimension": 32}
    cfg.update({f"pooling_mode_{m}": m == mode for m in modes})
    cfg["include_prompt"] = True
    write_json(out / "1_Pooling" / "config.json", cfg)
    write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_TOKENS, "do_lower_case": False})


def byte_level_bpe(specials: list, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


def sharpen_attention(model, patterns) -> None:
    """Scales the query and key projections (15x transformers' init) so that
    attention scores are of order one: at the init's scale attention is
    nearly uniform, and positions (rotary, relative or absolute) would hardly
    change the output, so a wrong rotary base or bucket would go unseen."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(pat in name for pat in patterns) and name.endswith("weight"):
                p.mul_(15.0)


def golden(model, fast: PreTrainedTokenizerFast, pad_id: int) -> dict:
    """Token ids and pooled vectors, alone and in padded batches."""
    model.eval()
    rows = []
    with torch.no_grad():
        for text in TEXTS:
            ids = fast(text, truncation=True, max_length=MAX_TOKENS)["input_ids"]
            t = torch.tensor([ids])
            h = model(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0]
            rows.append(
                {
                    "text": text,
                    "ids": ids,
                    "mean": h.mean(0).tolist(),
                    "cls": h[0].tolist(),
                    "last": h[-1].tolist(),
                }
            )
        all_ids = [r["ids"] for r in rows]
        seq = max(len(i) for i in all_ids)

        def run(left: bool):
            ids = torch.full((len(all_ids), seq), pad_id, dtype=torch.long)
            mask = torch.zeros((len(all_ids), seq), dtype=torch.long)
            for r, i in enumerate(all_ids):
                if left:
                    ids[r, seq - len(i):] = torch.tensor(i)
                    mask[r, seq - len(i):] = 1
                else:
                    ids[r, : len(i)] = torch.tensor(i)
                    mask[r, : len(i)] = 1
            return model(input_ids=ids, attention_mask=mask).last_hidden_state, mask

        h, mask = run(left=False)
        lengths = mask.sum(1)
        batch_right_last = [h[r, lengths[r] - 1].tolist() for r in range(len(all_ids))]
        batch_mean = [(h[r, : lengths[r]].mean(0)).tolist() for r in range(len(all_ids))]
        h, _ = run(left=True)
        batch_left_last = [h[r, -1].tolist() for r in range(len(all_ids))]
    return {
        "versions": versions(),
        "max_tokens": MAX_TOKENS,
        "texts": rows,
        "batch_right_last": batch_right_last,
        "batch_left_last": batch_left_last,
        "batch_mean": batch_mean,
    }


def check_truncation(g: dict) -> None:
    assert sum(len(r["ids"]) == MAX_TOKENS for r in g["texts"]) >= 1, "no text reaches max_tokens"


# ---------------------------------------------------------------- MPNet


def make_mpnet() -> None:
    out = fresh("tiny-mpnet")
    bert = Tokenizer.from_file(str(BERT_TOKENIZER))
    words = [t for t, _ in sorted(bert.get_vocab().items(), key=lambda kv: kv[1]) if not t.startswith("[")]
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + words + ["<mask>"])}
    raw = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=100))
    raw.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece(prefix="##")
    raw.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0 </s>:0",
        pair="<s>:0 $A:0 </s>:0 </s>:0 $B:0 </s>:0",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    raw.add_special_tokens(specials + ["<mask>"])
    raw.save(str(out / "tokenizer.json"))
    hub_config = {
        "architectures": ["MPNetModel"],
        "model_type": "mpnet",
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": MAX_TOKENS + 2,
        "layer_norm_eps": 1e-05,
        "relative_attention_num_buckets": 32,
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    write_json(out / "config.json", hub_config)
    torch.manual_seed(SEED + 3)
    config = MPNetConfig.from_pretrained(str(out))
    model = MPNetModel(config, add_pooling_layer=False).eval()
    sharpen_attention(model, ["attn.q.", "attn.k."])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
            if "relative_attention_bias" in name:
                # Large enough that a wrong bucket shows in the output.
                p.copy_(torch.randn_like(p) * 2.0)
    model.save_pretrained(str(out), safe_serialization=True)
    write_json(out / "config.json", hub_config)
    reloaded = MPNetModel.from_pretrained(str(out), add_pooling_layer=False).eval()
    write_pooling(out, "mean_tokens")
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=MAX_TOKENS, pad_token="<pad>")
    g = golden(reloaded, fast, pad_id=1)
    check_truncation(g)
    write_json(out / "golden.json", g)


# ---------------------------------------------------------------- SPLADE


def make_splade() -> None:
    import tempfile

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder import models as sparse_models
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    out = fresh("tiny-splade")
    raw = Tokenizer.from_file(str(BERT_TOKENIZER))
    raw.no_padding()
    raw.no_truncation()
    vocab = raw.get_vocab_size()
    torch.manual_seed(SEED + 4)
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
        architectures=["BertForMaskedLM"],
    )
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        # A positive bias on part of the vocabulary so that some logits
        # pass the ReLU and the vectors are neither empty nor dense.
        model.cls.predictions.bias.copy_(torch.randn(vocab) * 0.5)
    fast = BertTokenizerFast(
        tokenizer_object=raw,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=True,
        model_max_length=MAX_TOKENS,
    )
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        fast.save_pretrained(tmp)
        mlm = sparse_models.MLMTransformer(tmp, max_seq_length=MAX_TOKENS)
        pool = sparse_models.SpladePooling(pooling_strategy="max", activation_function="relu")
        st = SparseEncoder(modules=[mlm, pool], device="cpu")
        st.save(str(out))
    st = SparseEncoder(str(out), device="cpu")
    dense = st.encode(TEXTS, convert_to_tensor=True, convert_to_sparse_tensor=False, batch_size=4)
    rows = []
    for text, row in zip(TEXTS, dense):
        ids = st.tokenizer(text, truncation=True, max_length=MAX_TOKENS)["input_ids"]
        nz = torch.nonzero(row).flatten().tolist()
        rows.append({"text": text, "ids": ids, "indices": nz, "values": [float(row[i]) for i in nz]})
    import sentence_transformers

    v = versions()
    v["sentence_transformers"] = sentence_transformers.__version__
    g = {"versions": v, "max_tokens": MAX_TOKENS, "vocab_size": vocab, "texts": rows}
    assert any(len(r["ids"]) == MAX_TOKENS for r in rows)
    assert all(0 < len(r["indices"]) < vocab for r in rows if r["text"])
    write_json(out / "golden.json", g)
    for extra in ["README.md"]:
        if (out / extra).exists():
            (out / extra).unlink()


# ---------------------------------------------------------------- NomicBert


def nomic_hub_names(state: dict, layers: int) -> dict:
    """transformers' NomicBert names -> the hub checkpoint's (the reverse of
    transformers' conversion mapping for nomic_bert)."""
    out = {
        "embeddings.word_embeddings.weight": state["embeddings.word_embeddings.weight"],
        "embeddings.token_type_embeddings.weight": state["embeddings.token_type_embeddings.weight"],
        "emb_ln.weight": state["embeddings.LayerNorm.weight"],
        "emb_ln.bias": state["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        src, dst = f"layers.{i}.", f"encoder.layers.{i}."
        out[dst + "attn.Wqkv.weight"] = torch.cat(
            [state[src + f"self_attn.{p}_proj.weight"] for p in "qkv"], dim=0
        )
        out[dst + "attn.out_proj.weight"] = state[src + "self_attn.o_proj.weight"]
        out[dst + "mlp.fc11.weight"] = state[src + "mlp.up_proj.weight"]
        out[dst + "mlp.fc12.weight"] = state[src + "mlp.gate_proj.weight"]
        out[dst + "mlp.fc2.weight"] = state[src + "mlp.down_proj.weight"]
        for norm, name in [("norm1", "post_attention_layernorm"), ("norm2", "post_mlp_layernorm")]:
            out[dst + f"{norm}.weight"] = state[src + f"{name}.weight"]
            out[dst + f"{norm}.bias"] = state[src + f"{name}.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def make_nomic() -> None:
    out = fresh("tiny-nomic")
    raw = Tokenizer.from_file(str(BERT_TOKENIZER))
    raw.no_padding()
    raw.no_truncation()
    raw.save(str(out / "tokenizer.json"))
    vocab = raw.get_vocab_size()
    torch.manual_seed(SEED)
    config = NomicBertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        hidden_act="silu",
        max_position_embeddings=MAX_TOKENS,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
    )
    model = NomicBertModel(config, add_pooling_layer=False).eval()
    sharpen_attention(model, ["self_attn.q_proj", "self_attn.k_proj"])
    # Random layer-norm parameters, not ones and zeros, so that a wrong norm shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
    state = nomic_hub_names(model.state_dict(), 2)
    safetensors.torch.save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    hub_config = {
        "architectures": ["NomicBertModel"],
        "model_type": "nomic_bert",
        "activation_function": "swiglu",
        "vocab_size": vocab,
        "n_embd": 32,
        "n_head": 4,
        "n_layer": 2,
        "n_inner": 48,
        "n_positions": MAX_TOKENS,
        "type_vocab_size": 2,
        "layer_norm_epsilon": 1e-12,
        "rotary_emb_fraction": 1.0,
        "rotary_emb_base": 1000,
        "rotary_emb_interleaved": False,
        "qkv_proj_bias": False,
        "mlp_fc1_bias": False,
        "mlp_fc2_bias": False,
        "prenorm": False,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }
    write_json(out / "config.json", hub_config)
    write_pooling(out, "mean_tokens")
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=MAX_TOKENS, pad_token="[PAD]")
    # The reference is transformers' model with the weights read back from
    # the hub-named file: a name mapped wrongly above would change them.
    reread = safetensors.torch.load_file(str(out / "model.safetensors"))
    again = nomic_hub_names(model.state_dict(), 2)
    assert all(torch.equal(reread[k], again[k]) for k in again)
    g = golden(model, fast, pad_id=0)
    check_truncation(g)
    write_json(out / "golden.json", g)


# ---------------------------------------------------------------- ModernBERT


def make_modernbert() -> None:
    out = fresh("tiny-modernbert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    raw = byte_level_bpe(specials, 400)
    cls, sep = raw.token_to_id("[CLS]"), raw.token_to_id("[SEP]")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    raw.save(str(out / "tokenizer.json"))
    vocab = raw.get_vocab_size()
    hub_config = {
        "architectures": ["ModernBertModel"],
        "model_type": "modernbert",
        "vocab_size": vocab,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 48,
        "hidden_activation": "gelu",
        "max_position_embeddings": MAX_TOKENS,
        "norm_eps": 1e-5,
        "norm_bias": False,
        "attention_bias": False,
        "mlp_bias": False,
        "pad_token_id": raw.token_to_id("[PAD]"),
        "bos_token_id": cls,
        "eos_token_id": sep,
        "cls_token_id": cls,
        "sep_token_id": sep,
        "global_attn_every_n_layers": 2,
        "global_rope_theta": 160000.0,
        "local_attention": 8,
        "local_rope_theta": 10000.0,
        "classifier_pooling": "cls",
        "torch_dtype": "float32",
    }
    write_json(out / "config.json", hub_config)
    torch.manual_seed(SEED + 1)
    config = ModernBertConfig.from_pretrained(str(out))
    config._attn_implementation = "eager"
    assert config.layer_types == ["full_attention", "sliding_attention"], config.layer_types
    model = ModernBertModel(config).eval()
    sharpen_attention(model, ["attn.Wqkv"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + 1.0)
    model.save_pretrained(str(out), safe_serialization=True)
    # save_pretrained rewrote config.json in transformers 5's layout; the
    # hub's (what candle reads and gte-modernbert-base ships) goes back.
    write_json(out / "config.json", hub_config)
    reloaded = ModernBertModel.from_pretrained(str(out), attn_implementation="eager").eval()
    write_pooling(out, "cls_token")
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=MAX_TOKENS, pad_token="[PAD]")
    g = golden(reloaded, fast, pad_id=hub_config["pad_token_id"])
    check_truncation(g)
    write_json(out / "golden.json", g)


# ---------------------------------------------------------------- Qwen3


def make_qwen3() -> None:
    out = fresh("tiny-qwen3")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    raw = byte_level_bpe(specials, 400)
    eos = raw.token_to_id("<|endoftext|>")
    raw.post_processor = processors.TemplateProcessing(
        single="$A:0 <|endoftext|>:0",
        pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", eos)],
    )
    raw.save(str(out / "tokenizer.json"))
    vocab = raw.get_vocab_size()
    hub_config = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "max_position_embeddings": MAX_TOKENS,
        "max_window_layers": 2,
        "sliding_window": None,
        "use_sliding_window": False,
        "rope_theta": 1000000,
        "rope_scaling": None,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    }
    write_json(out / "config.json", hub_config)
    torch.manual_seed(SEED + 2)
    config = Qwen3Config.from_pretrained(str(out))
    config._attn_implementation = "eager"
    model = Qwen3Model(config).eval()
    sharpen_attention(model, ["self_attn.q_proj", "self_attn.k_proj"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + 1.0)
    state = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    reloaded = Qwen3Model.from_pretrained(str(out), attn_implementation="eager").eval()
    for k, v in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[k], v), k
    write_pooling(out, "lasttoken")
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=MAX_TOKENS, pad_token="<|endoftext|>")
    g = golden(reloaded, fast, pad_id=eos)
    check_truncation(g)
    write_json(out / "golden.json", g)


# ---------------------------------------------------------------- GTE (new)


def load_gte_code(code_dir: Path):
    """NewConfig and NewModel from the hub's remote code for the new GTE
    (configuration.py and modeling.py of Alibaba-NLP/new-impl, saved in
    code_dir), imported as a package as trust_remote_code would import it.
    The code calls PreTrainedModel.get_extended_attention_mask, which
    transformers 5 no longer has: it is given back here as transformers 4
    defined it for an encoder's [batch, seq] mask (0 for a real token, the
    float32 minimum for padding, broadcast over heads and queries)."""
    import importlib
    import types

    for f in ["configuration.py", "modeling.py"]:
        assert (code_dir / f).is_file(), f"{code_dir / f} is missing: save Alibaba-NLP/new-impl's {f} there"
    package = types.ModuleType("gte_remote_code")
    package.__path__ = [str(code_dir)]
    sys.modules["gte_remote_code"] = package
    configuration = importlib.import_module("gte_remote_code.configuration")
    modeling = importlib.import_module("gte_remote_code.modeling")

    def extended_mask(self, mask, shape):
        return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min

    if not hasattr(modeling.NewModel, "get_extended_attention_mask"):
        modeling.NewModel.get_extended_attention_mask = extended_mask
    return configuration.NewConfig, modeling.NewModel


def make_gte(code_dir: Path) -> None:
    """tiny-gte: the new GTE (model_type "new", NewModel) — hidden 32, 2
    layers, 4 heads, a gated MLP of 48 (GELU on the gate), rotary with base
    1000 under NTK scaling by 2 (as gte-base-en-v1.5 declares it, base
    500000), type_vocab_size 2 (as gte-large-en-v1.5); config.json in the
    hub's layout, weights as NewModel writes them (bare names); the BERT
    word-piece tokenizer of tiny-bert-rerank; 1_Pooling: cls."""
    NewConfig, NewModel = load_gte_code(code_dir)
    out = fresh("tiny-gte")
    raw = Tokenizer.from_file(str(BERT_TOKENIZER))
    raw.no_padding()
    raw.no_truncation()
    raw.save(str(out / "tokenizer.json"))
    hub_config = {
        "architectures": ["NewModel"],
        "model_type": "new",
        "vocab_size": raw.get_vocab_size(),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 48,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": MAX_TOKENS,
        "type_vocab_size": 2,
        "layer_norm_type": "layer_norm",
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "rope",
        "rope_theta": 1000,
        "rope_scaling": {"factor": 2.0, "type": "ntk"},
        "pack_qkv": True,
        "unpad_inputs": False,
        "use_memory_efficient_attention": False,
        "logn_attention_scale": False,
        "logn_attention_clip1": False,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }
    write_json(out / "config.json", hub_config)
    kwargs = {k: v for k, v in hub_config.items() if k not in ("architectures", "model_type", "torch_dtype")}
    torch.manual_seed(SEED + 3)
    model = NewModel(NewConfig(**kwargs), add_pooling_layer=False).eval()
    assert type(model.embeddings.rotary_emb).__name__ == "NTKScalingRotaryEmbedding"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("qkv_proj.weight"):
                p[: 2 * 32].mul_(15.0)  # the query and key rows (see sharpen_attention)
            elif "LayerNorm" in name or "_ln." in name:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    # The reference is a fresh model with the weights read back from the file.
    reloaded = NewModel(NewConfig(**kwargs), add_pooling_layer=False).eval()
    reloaded.load_state_dict(safetensors.torch.load_file(str(out / "model.safetensors")), strict=True)
    write_pooling(out, "cls_token")
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=MAX_TOKENS, pad_token="[PAD]")
    g = golden(reloaded, fast, pad_id=0)
    modeling = (code_dir / "modeling.py").read_bytes()
    g["versions"]["gte_code"] = f"new-impl modeling.py, {len(modeling)} bytes, sha256 {hashlib.sha256(modeling).hexdigest()[:16]}"
    check_truncation(g)
    write_json(out / "golden.json", g)


if __name__ == "__main__":
    torch.set_num_threads(1)
    args = sys.argv[1:]
    gte_code = None
    if "--gte-code" in args:
        i = args.index("--gte-code")
        gte_code = Path(args[i + 1])
        del args[i : i + 2]
    which = args or ["mpnet", "nomic", "modernbert", "qwen3", "splade"] + (["gte"] if gte_code else [])
    makers = {
        "mpnet": make_mpnet,
        "nomic": make_nomic,
        "modernbert": make_modernbert,
        "qwen3": make_qwen3,
        "splade": make_splade,
        "gte": lambda: make_gte(gte_code) if gte_code else sys.exit("gte needs --gte-code DIR"),
    }
    for name in which:
        makers[name]()
        print(f"wrote tiny-{name}")
