"""`huggingface_hub`'s InferenceClient and the `openai` client, each used as
its own docs say, against the routes TEI serves at a server's root.

Usage: python3 root_routes_client_check.py BASE_URL API_KEY MODEL GOLDEN_JSON

`InferenceClient(model=BASE_URL).feature_extraction(text)` posts to `/`;
`OpenAI(base_url=BASE_URL)` (no `/v1`) posts to `/embeddings`. Every vector
must reach cosine >= 0.9999 with the golden one. Exits non-zero otherwise.
"""

import json
import math
import sys

from huggingface_hub import InferenceClient
from openai import OpenAI


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main():
    base_url, api_key, model, golden_path = sys.argv[1:5]
    with open(golden_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    # The one text over 256 word pieces is refused without truncation.
    cases = [c for c in cases if len(c["text"]) < 1500][:12]
    checked = 0

    hf = InferenceClient(model=base_url, token=api_key)
    for c in cases:
        v = hf.feature_extraction(c["text"])
        flat = [float(x) for x in v.reshape(-1)]
        assert len(flat) == len(c["embedding"]), ("feature_extraction", v.shape)
        cos = cosine(flat, c["embedding"])
        assert cos >= 0.9999, f"feature_extraction: {c['text']!r}: cosine {cos}"
        checked += 1

    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)
    r = client.embeddings.create(input=[c["text"] for c in cases], model=model)
    assert [d.index for d in r.data] == list(range(len(cases)))
    for d, c in zip(r.data, cases):
        cos = cosine(d.embedding, c["embedding"])
        assert cos >= 0.9999, f"openai at the root: {c['text']!r}: cosine {cos}"
        checked += 1

    print(f"ok: {checked} vectors matched")


if __name__ == "__main__":
    main()
