#!/usr/bin/env python3
"""How the disk's fdatasync cost grows with the bytes it covers (docs/benchmarks.md, issue 2).

Appends `batch` records of 1,190 bytes (a 1 KiB message as the store writes it) to a growing
file, then fdatasyncs, 2,000 times; three rounds per batch size. Prints, for each batch size,
the fdatasync rate and the appends/s a perfect group commit carrying `batch` appends per
fsync (and no CPU cost) would reach, relative to one append per fsync.

Usage: scripts/fsync-batch-probe.py [directory]   (default: the current directory)
"""
import os
import statistics
import sys
import time

REC = b"x" * 1190


def rate(path, batch, n=2000):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR)
    try:
        t = time.perf_counter()
        for _ in range(n):
            os.write(fd, REC * batch)
            os.fdatasync(fd)
        return n / (time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)


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
