"""Import time of ``model_engine_infra`` over a bare interpreter start, measured in the same run.

Target (issue 3): at most +60 ms. Each sample is a fresh interpreter; medians of interleaved runs.
    python benchmarks/import_time.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BARE = "pass"
OURS = "import model_engine_infra"
PUBLIC = "from model_engine_infra import load_config, build_infra"
TARGET_MS = 60.0


def sample(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    sample(OURS)  # warm the file cache and byte-code
    bare, ours, public = [], [], []
    for _ in range(args.runs):  # interleaved, so drift hits all alike
        bare.append(sample(BARE))
        ours.append(sample(OURS))
        public.append(sample(PUBLIC))
    bare_ms = statistics.median(bare) * 1000
    print(f"bare interpreter start: {bare_ms:7.1f} ms (median of {args.runs})")
    verdict = 0
    for label, runs in ((OURS, ours), (PUBLIC, public)):
        ms = statistics.median(runs) * 1000
        added = ms - bare_ms
        ok = added <= TARGET_MS
        verdict |= 0 if ok else 1
        print(
            f"{label:58s} {ms:6.1f} ms  added {added:+6.1f} ms  ratio {ms / bare_ms:.2f}x  "
            f"(target <= +{TARGET_MS:.0f} ms: {'PASS' if ok else 'FAIL'})"
        )
    return verdict


if __name__ == "__main__":
    sys.exit(main())
