"""The `cohere` Python SDK, used as its own docs say (`Client` for
`/v1/rerank`, `ClientV2` for `/v2/rerank`), against a running `corral serve`
that serves the tiny BERT cross-encoder beside an embedder.

Usage: python3 cohere_client_check.py BASE_URL API_KEY MODEL GOLDEN_JSON

Every relevance score must be sentence-transformers' `CrossEncoder.predict`
for its pair (within 1e-4), results best first, `top_n` honoured, and the
documents handed back when asked. Exits non-zero otherwise.
"""

import json
import sys

import cohere


def main():
    base_url, api_key, model, golden_path = sys.argv[1:5]
    with open(golden_path, encoding="utf-8") as f:
        pairs = json.load(f)["pairs"]
    checked = 0
    v1 = cohere.Client(base_url=base_url, api_key=api_key, timeout=120)
    v2 = cohere.ClientV2(base_url=base_url, api_key=api_key, timeout=120)
    for p in pairs:
        # The golden pair's document among two others, so that its index
        # and its place in the ranking are both checked.
        documents = ["a first unrelated text", p["document"], "a third one"]
        r = v1.rerank(model=model, query=p["query"], documents=documents,
                      top_n=3, return_documents=True)
        scores = [x.relevance_score for x in r.results]
        assert scores == sorted(scores, reverse=True), ("not best first", scores)
        hit = [x for x in r.results if x.index == 1]
        assert len(hit) == 1, r
        assert abs(hit[0].relevance_score - p["ce_predict"]) < 1e-4, (p["query"], hit[0], p["ce_predict"])
        assert hit[0].document.text == p["document"], hit[0]
        checked += 1

        r = v2.rerank(model=model, query=p["query"], documents=documents, top_n=1)
        assert len(r.results) == 1, r
        assert r.results[0].relevance_score == scores[0], (r.results[0], scores)
        checked += 1
    print(f"ok: {checked} reranks matched")


if __name__ == "__main__":
    main()
