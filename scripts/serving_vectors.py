#!/usr/bin/env python3
"""Writes fixtures/serving/vectors.json: inputs and expected assignments of the serving contract
(DESIGN §5), computed here in plain Python, apart from levered's Rust code, so that SDK authors in any
language (and levered's own tests) can check an implementation against it.

    python3 scripts/serving_vectors.py > fixtures/serving/vectors.json
"""

import hashlib
import json
from datetime import datetime, timezone

OPTIMIZATION = "hero"
BATCH_SECONDS = 3600
FACTORS = ["country", "device"]

# An allocation as levered writes it: a holdout row and bandit rows per context, plus `*`.
ROWS = []
for context, h, weights in [
    ("*", 0.1, [0.05, 0.45, 0.3, 0.2]),
    ("country=US|device=mobile", 0.1, [0.7, 0.1, 0.1, 0.1]),
    ("country=DE|device=desktop", 0.25, [0.0, 0.0, 0.5, 0.5]),
]:
    ROWS.append({"context": context, "arm_id": "holdout", "role": "holdout",
                 "variant": '{"headline":"A"}', "weight": h})
    for arm, w in enumerate(weights, start=1):
        ROWS.append({"context": context, "arm_id": str(arm), "role": "bandit",
                     "variant": json.dumps({"headline": "ABCD"[arm - 1]}, separators=(",", ":")),
                     "weight": (1 - h) * w})


def H(text):
    """First 8 bytes of SHA-256 as a big-endian integer, over 2^64 (correctly rounded)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def context_key(context):
    return "|".join(f"{f}={context.get(f, '')}" for f in FACTORS)


def assign(unit, context, at):
    key = context_key(context)
    if not any(r["context"] == key for r in ROWS):
        key = "*"
    rows = [r for r in ROWS if r["context"] == key]
    holdout = [r for r in rows if r["role"] == "holdout"]
    h = holdout[0]["weight"] if holdout else 0.0
    seconds = int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
    batch_start = seconds - seconds % BATCH_SECONDS
    if holdout and H(f"{OPTIMIZATION}:holdout:{unit}") < h:
        return {"context": key, "batch_start": batch_start, "holdout": True, "arm_id": "holdout"}
    u = H(f"{OPTIMIZATION}:{unit}:{batch_start}")
    bandit = sorted((r for r in rows if r["role"] == "bandit"), key=lambda r: int(r["arm_id"]))
    cumulative = 0.0
    for r in bandit:
        cumulative += r["weight"] / (1 - h)
        if cumulative > u:
            return {"context": key, "batch_start": batch_start, "holdout": False, "arm_id": r["arm_id"]}
    last = [r for r in bandit if r["weight"] > 0][-1]
    return {"context": key, "batch_start": batch_start, "holdout": False, "arm_id": last["arm_id"]}


def main():
    contexts = [{}, {"country": "US", "device": "mobile"}, {"country": "DE", "device": "desktop"},
                {"country": "FR", "device": "mobile"}, {"country": "US"}]
    times = ["2026-03-01T00:00:00Z", "2026-03-01T00:59:59Z", "2026-03-01T01:00:00Z",
             "2026-03-02T13:30:00Z"]
    vectors = []
    for i in range(60):
        unit = f"visitor-{i}"
        context = contexts[i % len(contexts)]
        at = times[(i // len(contexts)) % len(times)]
        vectors.append({"unit": unit, "context": context, "at": at,
                        "expected": assign(unit, context, at)})
    print(json.dumps({
        "about": "levered serving contract test vectors (DESIGN §5); written by scripts/serving_vectors.py",
        "optimization": OPTIMIZATION, "batch_seconds": BATCH_SECONDS, "context_factors": FACTORS,
        "hash": "H(s) = first 8 bytes of SHA-256(s), big-endian, / 2^64; holdout when "
                "H('{optimization}:holdout:{unit}') < h; else u = H('{optimization}:{unit}:{batch_start}')",
        "allocation": ROWS, "vectors": vectors}, indent=1))


if __name__ == "__main__":
    main()
