#!/usr/bin/env python3
"""PyTorch peer of bench/gpt2_throughput.sh: GPT-2 training steps on one GPU in bf16.

usage: gpt2_torch_throughput.py [--mode eager|compile] [--layers L] [--heads H] [--dim C]
                                [--seq T] [--vocab V] [--batch B] [--steps N] [--warmup W]
bf16 autocast over fp32 parameters, fused AdamW, gradient clipping to norm 1, random tokens,
the model of gpt2_torch.py with PyTorch's fused attention (fast=True). Prints a table row and
one JSON line: tokens/s, TFLOP/s and MFU (6N + 12 L d T FLOP per token against 989 TFLOP/s),
peak allocated GPU memory.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_torch import Gpt2, adamw_param_groups, init_for_bench  # noqa: E402

PEAK_FLOPS = 989e12


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 12), ("heads", 12), ("dim", 768), ("seq", 1024),
                          ("vocab", 50257), ("batch", 16), ("steps", 10), ("warmup", 3)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    a = p.parse_args()
    torch.manual_seed(1)
    model = Gpt2(a.layers, a.heads, a.dim, a.seq, a.vocab, fast=True)
    init_for_bench(model)
    model = model.cuda()
    n_params = sum(q.numel() for q in model.parameters())
    flops_per_token = 6 * n_params + 12 * a.layers * a.dim * a.seq
    opt = torch.optim.AdamW(adamw_param_groups(model, 0.1), lr=1e-4, fused=True)
    step_model = torch.compile(model) if a.mode == "compile" else model
    inputs = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    targets = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    seconds = []
    loss = None
    for step in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = step_model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        if step >= a.warmup:
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    tokens = a.batch * a.seq / median
    tflops = tokens * flops_per_token / 1e12
    mem = torch.cuda.max_memory_allocated() / 2**30
    print(f"pytorch {torch.__version__} {a.mode} bf16 | L={a.layers} C={a.dim} T={a.seq} "
          f"B={a.batch} | {1e3 * median:.1f} ms/step | {tokens:.0f} tok/s | {tflops:.1f} TFLOP/s | "
          f"MFU {100 * tflops * 1e12 / PEAK_FLOPS:.1f}% | {mem:.1f} GiB")
    print(json.dumps({"impl": f"pytorch-{torch.__version__}-{a.mode}-bf16", "layers": a.layers,
                      "dim": a.dim, "seq": a.seq, "batch": a.batch,
                      "ms_per_step": round(1e3 * median, 3), "tokens_per_s": round(tokens, 1),
                      "tflops": round(tflops, 2), "mfu": round(tflops * 1e12 / PEAK_FLOPS, 4),
                      "memory_gib": round(mem, 2), "loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()
