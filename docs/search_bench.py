"""Time whole-log search on a 1,000,000-line file next to grep, and print a Markdown table.

Run: python docs/search_bench.py [--lines N] [--keep PATH]. Each measurement
runs in its own child process; the memory column is the most the search itself
held at once (tracemalloc's peak, file blocks included), apart from the
interpreter.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

FIRST_TOKEN = "zebra-first-line"
ABSENT_TOKEN = "token-that-is-absent"

SEARCH = r"""
import sys, time, tracemalloc
from logstream.core.search import LineIndex, compile_query, open_log, search
path, text, use_regex, rounds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
fd = open_log(path)
index = LineIndex()
for round in range(rounds):
    started = time.perf_counter()
    result = search(fd, index, path, compile_query(text, use_regex), limit=100, budget=600)
    print(f"{time.perf_counter() - started:.3f} {len(result['matches'])}")
# Once more under tracemalloc (slower, so untimed): the most memory the search held.
tracemalloc.start()
search(fd, index, path, compile_query(text, use_regex), limit=100, budget=600)
print(tracemalloc.get_traced_memory()[1])
"""


def generate(path, lines):
    """Write `lines` log lines of about 100 bytes, the first carrying FIRST_TOKEN."""
    with open(path, "w") as fp:
        fp.write(f"2026-01-01T00:00:00.000Z INFO  [boot] {FIRST_TOKEN} service starting "
                 f"with a line of about a hundred bytes.....\n")
        for i in range(2, lines + 1):
            fp.write(f"2026-01-01T00:{i // 60000 % 60:02}:{i // 1000 % 60:02}.{i % 1000:03}Z "
                     f"INFO  [http] GET /api/items/{i:07} 200 in {i % 97:02} ms from "
                 f"10.0.{i % 255:03}.7 agent=curl\n")


def child(args):
    """Run args; return (seconds, stdout)."""
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, result.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", help="reuse or keep the generated file at this path")
    options = parser.parse_args()
    path = options.keep or os.path.join(tempfile.mkdtemp(), "big.log")
    if not os.path.exists(path):
        generate(path, options.lines)
    size = os.path.getsize(path)
    child(["cat", path])  # read the file once, so every measurement finds it in the page cache
    rows = []
    for text in (FIRST_TOKEN, ABSENT_TOKEN):
        for flags in (["-c"], ["-ci"]):
            runs = [child(["grep", *flags, text, path]) for _ in range(3)]
            seconds, out = min(runs)
            rows.append((f"`grep {' '.join(flags)}`", text, f"{seconds:.3f}", "—", out))
    for text, use_regex in ((FIRST_TOKEN, "0"), (ABSENT_TOKEN, "0"), (FIRST_TOKEN, "1"),
                            (ABSENT_TOKEN, "1")):
        out = child([sys.executable, "-c", SEARCH, path, text, use_regex, "4"])[1].splitlines()
        (cold, count), *kept = (line.split() for line in out[:4])
        warm = min(seconds for seconds, _ in kept)  # best of 3: the machine is shared
        mib = int(out[4]) / 2**20
        kind = "regex" if use_regex == "1" else "text"
        rows.append((f"search ({kind}), new index", text, cold, f"{mib:.0f}", count))
        rows.append((f"search ({kind}), index kept", text, warm, "", count))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{options.lines:,} lines, {size / 1e6:.0f} MB, in the page cache; {os.cpu_count()} "
          f"CPUs, load average {load}. grep: best of 3 runs; search: its first run (which "
          f"builds the line index), then the best of 3 more with the index kept.\n")
    print("| What | Token | Seconds | Most memory held (MiB) | Matches |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
