"""The official `openai` Python client sending load through `corral serve --cluster`.

Usage: python3 cluster_openai_client_load.py BASE_URL MODEL GOLDEN_JSON REQUESTS THREADS

Sends REQUESTS embedding requests, one golden text each (in turn), from THREADS
threads, with the client's defaults (base64, decoded by the client) and no
retries. Every 200 must reach cosine >= 0.9999 with the golden vector; a 503 is
counted; anything else fails. Prints one line, `ok=N unavailable=M`, and exits
non-zero on any other outcome.
"""

import json
import math
import sys
import threading

import openai
from openai import OpenAI


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main():
    base_url, model, golden_path, requests, threads = sys.argv[1:6]
    requests, threads = int(requests), int(threads)
    with open(golden_path, encoding="utf-8") as f:
        cases = [c for c in json.load(f)["cases"] if len(c["text"]) < 600]
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120)
    lock = threading.Lock()
    counts = {"ok": 0, "unavailable": 0}
    failures = []
    next_index = [0]

    def worker():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= requests:
                return
            case = cases[i % len(cases)]
            try:
                r = client.embeddings.create(input=case["text"], model=model)
                cos = cosine(r.data[0].embedding, case["embedding"])
                if cos < 0.9999:
                    raise AssertionError(f"cosine {cos} for {case['text']!r}")
                outcome = "ok"
            except openai.APIStatusError as e:
                if e.status_code != 503:
                    with lock:
                        failures.append(f"status {e.status_code}: {e}")
                    continue
                outcome = "unavailable"
            except Exception as e:  # a connection error, a wrong vector
                with lock:
                    failures.append(repr(e))
                continue
            with lock:
                counts[outcome] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(f"ok={counts['ok']} unavailable={counts['unavailable']}")
    if failures:
        print("\n".join(failures[:10]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
