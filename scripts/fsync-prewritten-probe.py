#!/usr/bin/env python3
"""What an fdatasync costs on space that was written before, against new space (docs/benchmarks.md).

Appends `batch` records of 1,190 bytes (a 1 KiB message as the store writes it) with `pwrite`,
then fdatasyncs, 1,500 times, into a file that is
  grow:   empty, so every write extends it and needs new blocks;
  sparse: extended with ftruncate first (no blocks behind it);
  falloc: posix_fallocate()d first (blocks reserved as unwritten extents);
  zeroed: written with zeros and fsynced first (what the store's zeroing thread prepares).
Three rounds per batch size; prints the median fdatasync rate per mode.

Usage: scripts/fsync-prewritten-probe.py [directory]   (default: the current directory)
"""
import os
import statistics
import sys
import time

REC = b"x" * 1190
MODES = ("grow", "sparse", "falloc", "zeroed")


def prepare(fd, mode, size):
    if mode == "zeroed":
        zeros = b"\0" * (1 << 20)
        for off in range(0, size, len(zeros)):
            os.pwrite(fd, zeros, off)
        os.fsync(fd)
    elif mode == "falloc":
        os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    elif mode == "sparse":
        os.ftruncate(fd, size)
        os.fsync(fd)


def rate(path, batch, mode, n=1500):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR)
    try:
        prepare(fd, mode, n * batch * len(REC) + (1 << 20))
        data = REC * batch
        off = 0
        t = time.perf_counter()
        for _ in range(n):
            os.pwrite(fd, data, off)
            off += len(data)
            os.fdatasync(fd)
        return n / (time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "fsync-prewritten.dat")
    for batch in (1, 32, 64):
        runs = {m: [] for m in MODES}
        for _ in range(3):
            for m in MODES:
                runs[m].append(rate(path, batch, m))
        medians = ", ".join(f"{m} {statistics.median(v):.0f}" for m, v in runs.items())
        print(f"batch {batch:2} ({batch * len(REC)} B): fdatasync/s median: {medians}", flush=True)


if __name__ == "__main__":
    main()
