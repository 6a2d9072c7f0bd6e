#!/usr/bin/env python3
"""PyTorch peer of bench/cpu_adam: torch.optim.AdamW steps on the CPU over one fp32 tensor.

usage: cpu_adam_torch.py [--n N] [--steps S] [--warmup W] [--mode fused|foreach|default]
Same n, hyperparameters and byte count as the C++ benchmark (28 bytes per parameter: p, g, m, v
read; p, m, v written), median step time. --mode fused (the default here): fused=True where this
torch supports it on the CPU (2.4+), else foreach=True; foreach: foreach=True; default:
torch.optim.AdamW as constructed without either flag (on CPU tensors, the per-tensor loop).
Threads: OMP_NUM_THREADS (else all cores), as torch.set_num_threads. Prints a table row and one
JSON line.
"""
import argparse
import json
import os
import statistics
import time

import torch


def make_optimizer(param, mode):
    if mode == "default":
        return torch.optim.AdamW([param], lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=0.01), "default"
    if mode == "foreach":
        return torch.optim.AdamW([param], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                                 foreach=True), "foreach"
    try:
        opt = torch.optim.AdamW([param], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                                fused=True)
        opt.step()  # a torch without the CPU fused kernel fails here, not in the constructor
        return opt, "fused"
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.AdamW([param], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                                foreach=True)
        return opt, "foreach"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000_000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--mode", choices=["fused", "foreach", "default"], default="fused")
    a = p.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    param = torch.nn.Parameter(torch.full((a.n,), 0.5))
    param.grad = torch.full((a.n,), -0.25)
    with torch.no_grad():
        opt, mode = make_optimizer(param, a.mode)
    seconds = []
    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        opt.step()
        if step >= a.warmup:
            seconds.append(time.perf_counter() - start)
    t = statistics.median(seconds)
    gbs = 28.0 * a.n / t / 1e9
    print(f"pytorch {torch.__version__} adamw {mode} | n={a.n} | {threads} threads | "
          f"{1e3 * t:.1f} ms/step | {a.n / t:.3g} params/s | {gbs:.1f} GB/s")
    print(json.dumps({"impl": f"pytorch-{torch.__version__}-adamw-{mode}", "n": a.n,
                      "threads": threads, "ms_per_step": round(1e3 * t, 3),
                      "params_per_s": float(f"{a.n / t:.4g}"), "gb_per_s": round(gbs, 2)}))


if __name__ == "__main__":
    main()
