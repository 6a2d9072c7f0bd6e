#!/usr/bin/env python3
"""PyTorch peer of bench/gpt2_step: full training steps of the same GPT-2, fp32, eager.

usage: gpt2_torch_step.py [--device cpu|cuda] [--layers L] [--heads H] [--dim C] [--seq T]
                          [--vocab V] [--batch B] [--steps N] [--warmup W]
Same shapes, random tokens, AdamW with the same param groups, gradient clipping to norm 1.
Prints a table row and one JSON line, like the C++ benchmark.
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


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("heads", 4), ("dim", 128), ("seq", 128), ("vocab", 256),
                          ("batch", 16), ("steps", 10), ("warmup", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    cuda = a.device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 like spillway's CUDA GEMMs
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1)
    model = Gpt2(a.layers, a.heads, a.dim, a.seq, a.vocab, fast=True)
    init_for_bench(model)
    model = model.to(a.device)
    opt = torch.optim.AdamW(adamw_param_groups(model, 0.0), lr=1e-4, betas=(0.9, 0.999),
                            fused=cuda)
    inputs = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    targets = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    seconds = []
    loss = None
    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if step >= a.warmup:
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    tokens = a.batch * a.seq / median
    print(f"pytorch {torch.__version__} {a.device} | L={a.layers} C={a.dim} T={a.seq} B={a.batch} | "
          f"{1e3 * median:.1f} ms/step | {tokens:.0f} tok/s | threads {torch.get_num_threads()}")
    print(json.dumps({"impl": f"pytorch-{torch.__version__}-{a.device}", "layers": a.layers, "dim": a.dim,
                      "seq": a.seq, "batch": a.batch, "ms_per_step": round(1e3 * median, 3),
                      "tokens_per_s": round(tokens, 1), "loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()
