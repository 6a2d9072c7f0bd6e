#!/usr/bin/env python3
"""Compares two golden reference files tensor by tensor: relative L2 error per tensor, worst last.

usage: compare_golden.py A.safetensors B.safetensors [--tol 1e-6]
Used to check that the committed reference (made with one PyTorch) is what another PyTorch
computes too. Exits 1 if a tensor is missing or differs by more than --tol.
"""
import argparse
import json
import math
import struct
import sys

FORMATS = {"F32": "f", "I32": "i"}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin:8 + n + end]
        fmt = FORMATS[info["dtype"]]
        out[name] = struct.unpack("<%d%s" % (len(raw) // 4, fmt), raw)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-6)
    args = p.parse_args()
    a, b = read(args.a), read(args.b)
    if set(a) != set(b):
        print("tensor names differ:", sorted(set(a) ^ set(b)))
        return 1
    errors = []
    for name in a:
        diff = sum((x - y) ** 2 for x, y in zip(a[name], b[name]))
        norm = sum(y * y for y in b[name])
        errors.append((math.sqrt(diff / norm) if norm else math.sqrt(diff), name))
    errors.sort()
    worst, name = errors[-1]
    print(f"{len(errors)} tensors; worst relative error {worst:.3g} ({name}); tolerance {args.tol:g}")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
