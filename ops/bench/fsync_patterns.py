#!/usr/bin/env python3
"""Cost of one write + fdatasync on this machine's disk, three ways side by side.

  append  the file grows with every write (a reopened fjall journal)
  sparse  the file was sized with ftruncate, writes fill a hole (fjall's new journals)
  zero    the range was written with zeros first (capgate's fjall patch)

Usage: python3 ops/bench/fsync_patterns.py [writes=1500] [bytes_per_write=7000] [dir=/tmp]
Prints wall time and CPU time (user + system) per write + fdatasync, twice over.
See vendor/fjall/CAPGATE-PATCH.md.
"""
import os
import resource
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 7000
DIR = sys.argv[3] if len(sys.argv) > 3 else "/tmp"
RECORD = b"x" * SIZE


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(mode):
    path = os.path.join(DIR, f"capgate_fsync_{mode}")
    if os.path.exists(path):
        os.unlink(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | (os.O_APPEND if mode == "append" else 0))
    try:
        if mode == "sparse":
            os.ftruncate(fd, 64 << 20)
        if mode == "zero":
            zeros = b"\0" * (1 << 20)
            for _ in range(max(1, (N * SIZE >> 20) + 1)):
                os.write(fd, zeros)
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        os.fsync(fd)
        c0, t0 = cpu(), time.perf_counter()
        for _ in range(N):
            os.write(fd, RECORD)
            os.fdatasync(fd)
        return (time.perf_counter() - t0) / N * 1e6, (cpu() - c0) / N * 1e6
    finally:
        os.close(fd)
        os.unlink(path)


for _ in range(2):
    for mode in ("append", "sparse", "zero"):
        wall, used = run(mode)
        print(f"{SIZE} B  {mode:7s} wall {wall:7.1f} us  cpu {used:6.1f} us")
