#!/usr/bin/env python3
"""A levered generation command (protocol 1, see docs/generation.md).

levered runs it when arms were dropped and places are free under generation.max_active_arms. It
reads the optimization's history as JSON on stdin and prints {"variants": [...]} on stdout.

This example keeps the other factors of the current leader (highest P(best)) and tries a new level
of the first factor from a list of candidates. A real generator would ask a language model for new
copy here, giving it the arms' rates and intervals from the input.
"""

import json
import sys

CANDIDATES = [
    "Ship in half the time",
    "Less busywork, more building",
    "From idea to production today",
    "Your team, finally in sync",
]


def main():
    history = json.load(sys.stdin)
    if history.get("protocol") != 1:
        sys.exit("unsupported protocol %r" % history.get("protocol"))
    factors = [f["name"] for f in history["factors"]]
    arms = history["arms"]
    known = {json.dumps(a["variant"], sort_keys=True) for a in arms}
    tried = {a["variant"][factors[0]] for a in arms}
    serving = [a for a in arms if a["status"] in ("active", "incubating")]
    leader = max(serving or arms, key=lambda a: (a["p_best"] or 0.0, a["mean"]))
    variants = []
    for level in CANDIDATES:
        if len(variants) == history["wanted"]:
            break
        if level in tried:
            continue
        variant = dict(leader["variant"], **{factors[0]: level})
        if json.dumps(variant, sort_keys=True) not in known:
            variants.append(variant)
    json.dump({"variants": variants}, sys.stdout)


if __name__ == "__main__":
    main()
