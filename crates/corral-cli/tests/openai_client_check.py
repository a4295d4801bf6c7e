"""The official `openai` Python client against a running `corral serve`.

Usage: python3 openai_client_check.py BASE_URL API_KEY MODEL GOLDEN_JSON

Embeds the golden texts that fit the model's length one string at a time, as
one batch, as the client's default (base64, decoded by the client), and with
`encoding_format="base64"` decoded here (little-endian f32); every vector must
reach cosine >= 0.9999 with the golden one. Exits non-zero otherwise.
"""

import base64
import json
import math
import struct
import sys

from openai import OpenAI


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main():
    base_url, api_key, model, golden_path = sys.argv[1:5]
    with open(golden_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    # The one text over 256 word pieces is refused without truncation (400).
    cases = [c for c in cases if len(c["text"]) < 1500]
    texts = [c["text"] for c in cases]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)

    checked = 0

    def check(vectors, how):
        nonlocal checked
        assert len(vectors) == len(cases), (how, len(vectors))
        for v, c in zip(vectors, cases):
            cos = cosine(v, c["embedding"])
            assert cos >= 0.9999, f"{how}: {c['text']!r}: cosine {cos}"
            checked += 1

    # one string per request, floats
    singles = []
    for t in texts:
        r = client.embeddings.create(input=t, model=model, encoding_format="float")
        assert r.model == model and r.data[0].index == 0
        assert r.usage.prompt_tokens > 0
        singles.append(r.data[0].embedding)
    check(singles, "single strings")

    # one batch, the client's default (it asks for base64 and decodes it)
    r = client.embeddings.create(input=texts, model=model)
    assert [d.index for d in r.data] == list(range(len(texts)))
    check([d.embedding for d in r.data], "batch, client default")

    # explicit base64: the client hands back the string
    r = client.embeddings.create(input=texts, model=model, encoding_format="base64")
    decoded = []
    for d in r.data:
        raw = base64.b64decode(d.embedding)
        decoded.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    check(decoded, "batch, base64")

    print(f"ok: {checked} vectors matched")


if __name__ == "__main__":
    main()
