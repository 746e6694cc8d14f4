"""bench/py_objects.py — a real program for the memtier rows: python3 building
and dropping millions of objects, the way a data-munging script does.

Each round builds a list of records (a dict per record with str/int/float/list
values, string keys and values built by formatting and joining), indexes them
in a dict of lists by key, serialises part of them to strings and sorts, then
drops the round's data except a small sample kept alive to the end (so the
heap stays fragmented, as in a long-running program). Small objects mostly go
to pymalloc's arenas (256 KiB, from mmap), larger ones (list/dict tables,
strings > 512 B) to malloc: both the interposer's small-block path and its
large-block path are exercised. Deterministic (a seeded LCG, no `random`).

usage: python3 py_objects.py [SCALE]   (SCALE 1.0 ≈ 2-3 s under glibc)
prints: one line `objects=<records built> checksum=<number>`
"""

import sys


def lcg(state: int) -> int:
    return (state * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)


def round_of(n: int, seed: int, keep: list) -> int:
    state = seed
    records = []
    for i in range(n):
        state = lcg(state)
        words = [f"w{(state >> s) & 1023}" for s in (8, 18, 28, 38)]
        records.append(
            {
                "id": i,
                "name": "-".join(words),
                "score": (state >> 40) / 16777216.0,
                "tags": words[: 1 + (state & 3)],
                "blob": "x" * (16 + (state >> 20) % 600),
            }
        )
    index: dict = {}
    for r in records:
        index.setdefault(r["tags"][0], []).append(r)
    lines = sorted(f"{r['name']}:{r['score']:.3f}" for r in records[::3])
    total = sum(len(v) for v in index.values()) + len(lines)
    keep.extend(records[:: max(1, n // 50)])
    return total


def main() -> None:
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds, n = 12, int(25_000 * scale)
    keep: list = []
    checksum = 0
    for k in range(rounds):
        checksum += round_of(n, 0x9E3779B97F4A7C15 + k, keep)
    print(f"objects={rounds * n} checksum={checksum + len(keep)}")


if __name__ == "__main__":
    main()
