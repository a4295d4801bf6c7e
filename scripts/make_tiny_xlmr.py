#!/usr/bin/env python3
"""Writes the tiny random XLM-RoBERTa test fixture and its PyTorch golden output.

The fixture lives in crates/corral-embed/tests/data/tiny-xlmr/ and is committed:
CI does not run this script (it has no torch); the tests read the files.

    config.json        XLMRobertaConfig: hidden 32, 2 layers, 4 heads,
                       intermediate 64, 66 positions (64 tokens + padding_idx 1 + 1)
    model.safetensors  random fp32 weights (fixed seed), names as
                       XLMRobertaModel.save_pretrained writes them (no prefix)
    tokenizer.json     a small Unigram (SentencePiece-style) tokenizer built
                       here from inline multilingual text, with XLM-R's special
                       tokens <s> <pad> </s> <unk> at ids 0..3, <mask> last,
                       Metaspace pre-tokenizer and a `<s> … </s>` post-processor
    golden.json        texts (ASCII and not), their token ids, and the
                       mean-pooled and CLS-pooled last hidden states from
                       PyTorch (fp32, not normalised), each text run alone

Regenerate (offline; nothing is downloaded):

    HF_HUB_OFFLINE=1 /work/venv-inf/bin/python scripts/make_tiny_xlmr.py

Any Python with torch, transformers (>= 4.40) and tokenizers will do. The
output depends only on the seed and the library versions; rerunning with the
same versions gives the same files.
"""

import json
import math
import os
import sys
import unicodedata
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402
from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast  # noqa: E402

SEED = 20261127
OUT = Path(__file__).resolve().parent.parent / "crates" / "corral-embed" / "tests" / "data" / "tiny-xlmr"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
MAX_TOKENS = 64
PADDING_IDX = 1

# The tokenizer's vocabulary comes from this text: a few languages and
# scripts, so that the vocabulary has pieces for each.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, this is a small multilingual test corpus for a tiny model.",
    "Embeddings turn text into vectors; similar texts get similar vectors.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Grüße aus Köln und schöne Straßen in München.",
    "Le renard brun rapide saute par-dessus le chien paresseux. Ça va très bien, merci.",
    "Un café au lait et une crème brûlée, s'il vous plaît.",
    "El rápido zorro marrón salta sobre el perro perezoso. ¿Dónde está la estación?",
    "Быстрая коричневая лиса прыгает через ленивую собаку. Привет, мир!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "日本語のテキストを少しだけ書きます。東京は大きな都市です。",
    "我们喜欢学习中文，今天天气很好。",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "서울은 한국의 수도입니다. 안녕하세요!",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols ( ) [ ] - + = ? ! , . ; :",
]

# What the golden output covers: ASCII, accents, Cyrillic, CJK, Greek,
# Korean, an emoji (unknown to the vocabulary), a repeated word, runs of
# spaces (normalised to one), the empty string, and a text long enough to be
# truncated at 64 tokens.
TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Grüße aus Köln",
    "Ça va? Un café, s'il vous plaît.",
    "Привет, мир!",
    "日本語のテキスト",
    "我们喜欢学习中文",
    "Η γρήγορη αλεπού",
    "안녕하세요 서울",
    "emoji 🙂 unknown",
    "dog dog dog dog",
    "  spaces   between  words ",
    "",
    " ".join(["Embeddings turn text into vectors, über alles."] * 8),
]


def unigram_vocab() -> list:
    """A Unigram vocabulary built from CORPUS by rule, not by training (the
    tokenizers trainer is not deterministic from run to run): the special
    tokens, then every word of the corpus as one `▁word` piece, then every
    character alone (`▁` included). Scores are log frequencies, characters
    well below words, so a corpus word is one piece and any other word
    falls back to characters; a character never seen is `<unk>`."""
    words, chars = Counter(), Counter()
    for line in CORPUS:
        norm = unicodedata.normalize("NFKC", line)
        for w in norm.split():
            words["▁" + w] += 1
        for c in "▁" + norm.replace(" ", "▁"):
            chars[c] += 1
    total_w, total_c = sum(words.values()), sum(chars.values())
    vocab = [(t, 0.0) for t in SPECIALS]
    for w, n in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.append((w, math.log(n / total_w)))
    for c, n in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])):
        if c not in words:  # a one-character word is already a piece
            vocab.append((c, math.log(n / total_c) - 10.0))
    vocab.append(("<mask>", 0.0))
    return vocab


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.Unigram(unigram_vocab(), unk_id=SPECIALS.index("<unk>")))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(SPECIALS + ["<mask>"])
    for i, t in enumerate(SPECIALS):
        assert tok.token_to_id(t) == i, f"{t} should be id {i}"
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return tok


def randomise(model: torch.nn.Module) -> None:
    """Larger-than-init random weights, so that every part of the forward pass
    (positions included) moves the output well past the tests' tolerance."""
    g = torch.Generator().manual_seed(SEED)
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


def main() -> None:
    torch.manual_seed(SEED)
    raw = build_tokenizer()
    vocab = raw.get_vocab_size()
    fast = XLMRobertaTokenizerFast(
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
    config = XLMRobertaConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        max_position_embeddings=MAX_TOKENS + PADDING_IDX + 1,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=PADDING_IDX,
        bos_token_id=0,
        eos_token_id=2,
        position_embedding_type="absolute",
        architectures=["XLMRobertaModel"],
    )
    model = XLMRobertaModel(config, add_pooling_layer=False).eval()
    randomise(model)

    golden = []
    with torch.no_grad():
        for text in TEXTS:
            enc = fast(text, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            ids = enc["input_ids"]
            hidden = model(input_ids=ids, attention_mask=enc["attention_mask"]).last_hidden_state[0]
            golden.append(
                {
                    "text": text,
                    "ids": ids[0].tolist(),
                    "mean": hidden.mean(dim=0).tolist(),
                    "cls": hidden[0].tolist(),
                }
            )
        # The same texts padded in one batch give the same vectors (a check
        # of the reference itself: HF's position ids skip padding).
        enc = fast(TEXTS, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
        for g, m, c in zip(golden, mean, hidden[:, 0]):
            assert torch.allclose(torch.tensor(g["mean"]), m, atol=1e-5), g["text"]
            assert torch.allclose(torch.tensor(g["cls"]), c, atol=1e-5), g["text"]

    assert max(len(g["ids"]) for g in golden) == MAX_TOKENS, "the long text must be truncated"
    assert any(3 in g["ids"] for g in golden), "some text must hit <unk>"

    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    raw.save(str(OUT / "tokenizer.json"))
    # save_pretrained adds generation/other files on some versions: keep only ours.
    keep = {"config.json", "model.safetensors", "tokenizer.json", "golden.json"}
    for f in OUT.iterdir():
        if f.name not in keep:
            f.unlink()
    meta = {
        "generator": "scripts/make_tiny_xlmr.py",
        "seed": SEED,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "max_tokens": MAX_TOKENS,
        "texts": golden,
    }
    with open(OUT / "golden.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
        f.write("\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes, vocab {vocab})", file=sys.stderr)


if __name__ == "__main__":
    main()
