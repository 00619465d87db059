#!/usr/bin/env python3
"""How the disk's fdatasync cost grows with the bytes it covers (docs/benchmarks.md, issue 2).

Appends `batch` records of 1,190 bytes (a 1 KiB message as the store writes it) to a growing
file, then fdatasyncs, 2,000 times; three rounds per batch size. Prints, for each batch size,
the fdatasync rate and the appends/s a perfect group commit carrying `batch` appends per
fsync (and no CPU cost) would reach, relative to one append per fsync.

Usage: scripts/fsync-batch-probe.py [directory]   (default: the current directory)
"""
import importlib.util
import os
import statistics
import sys

# The timing loop is the "grow" mode of fsync-prewritten-probe.py, beside this file.
_SPEC = importlib.util.spec_from_file_location(
    "fsync_prewritten_probe", os.path.join(os.path.dirname(__file__), "fsync-prewritten-probe.py")
)
PREWRITTEN = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(PREWRITTEN)
REC = PREWRITTEN.REC


def rate(path, batch, n=2000):
    """fdatasyncs per second appending `batch` records per fsync to a growing file."""
    return PREWRITTEN.rate(path, batch, "grow", n)


def main():
    path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "fsync-probe.dat")
    sizes = (1, 16, 32, 64)
    runs = {b: [] for b in sizes}
    for _ in range(3):
        for b in sizes:
            runs[b].append(rate(path, b))
    one = statistics.median(runs[1])
    for b in sizes:
        m = statistics.median(runs[b])
        print(
            f"batch {b:2} ({b * len(REC)} B): {[round(x) for x in runs[b]]} fdatasync/s, "
            f"median {m:.0f}; {m * b:.0f} appends/s if each fsync carried {b} "
            f"= {m * b / one:.1f}x one append per fsync"
        )


if __name__ == "__main__":
    main()
