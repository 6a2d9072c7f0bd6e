#!/usr/bin/env python3
"""Peer of bench/offload.sh: PyTorch FSDP2 (fully_shard) with CPUOffloadPolicy on one GPU.

usage: fsdp2_offload.py [--layers L] [--heads H] [--dim C] [--seq T] [--vocab V] [--batch B]
                        [--steps N] [--warmup W] [--checkpointing]
The GPT-2 of bench/peers/gpt2_torch.py, one fully_shard per block and one for the root,
parameters, gradients and optimizer state in pinned CPU memory (CPUOffloadPolicy), bf16
compute with fp32 reductions (MixedPrecisionPolicy), AdamW on the CPU, gradient clipping to
norm 1, random tokens; with --checkpointing every block recomputes its forward in the backward.
Prints a table row with the per-step split (forward+backward with FSDP's transfers, clipping
and the CPU optimizer step) and one JSON line.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_torch import Block, Gpt2, adamw_param_groups, init_for_bench  # noqa: E402

try:
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
except ImportError:  # PyTorch 2.4-2.5
    from torch.distributed._composable.fsdp import (CPUOffloadPolicy, MixedPrecisionPolicy,
                                                    fully_shard)


class CheckpointedBlock(torch.nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return checkpoint(self.block, x, use_reentrant=False)


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("heads", 4), ("dim", 128), ("seq", 128), ("vocab", 256),
                          ("batch", 8), ("steps", 4), ("warmup", 1)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--checkpointing", action="store_true")
    a = p.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl", rank=0, world_size=1)
    torch.cuda.set_device(0)
    torch.manual_seed(1)
    model = Gpt2(a.layers, a.heads, a.dim, a.seq, a.vocab, fast=True)
    init_for_bench(model)
    if a.checkpointing:
        model.h = torch.nn.ModuleList([CheckpointedBlock(b) for b in model.h])
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    offload = CPUOffloadPolicy(pin_memory=True)
    for module in model.modules():
        if isinstance(module, Block):
            fully_shard(module, mp_policy=mp, offload_policy=offload)
    fully_shard(model, mp_policy=mp, offload_policy=offload)
    opt = torch.optim.AdamW(adamw_param_groups(model, 0.0), lr=1e-4, betas=(0.9, 0.999))
    inputs = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    targets = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    steps, compute, optimizer = [], [], []
    loss = None
    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(inputs, targets)
        loss.backward()
        torch.cuda.synchronize()
        mid = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        end = time.perf_counter()
        if step >= a.warmup:
            steps.append(end - start)
            compute.append(mid - start)
            optimizer.append(end - mid)
    median = statistics.median(steps)
    tokens = a.batch * a.seq / median
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"fsdp2-cpu-offload torch {torch.__version__} bf16 | L={a.layers} C={a.dim} T={a.seq} "
          f"B={a.batch} ckpt={int(a.checkpointing)} | {1e3 * median:.0f} ms/step | {tokens:.0f} tok/s"
          f" | fwd+bwd {1e3 * statistics.median(compute):.0f} ms, clip+CPU AdamW "
          f"{1e3 * statistics.median(optimizer):.0f} ms | peak GPU {peak:.1f} GiB")
    print(json.dumps({"impl": f"fsdp2-cpu-offload-{torch.__version__}", "layers": a.layers,
                      "dim": a.dim, "seq": a.seq, "batch": a.batch,
                      "ms_per_step": round(1e3 * median, 1), "tokens_per_s": round(tokens, 1),
                      "fwd_bwd_ms": round(1e3 * statistics.median(compute), 1),
                      "optimizer_ms": round(1e3 * statistics.median(optimizer), 1),
                      "peak_gpu_gib": round(peak, 2), "loss": round(loss.item(), 4)}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
