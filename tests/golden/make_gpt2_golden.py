#!/usr/bin/env python3
"""Writes tests/golden/gpt2_tiny.safetensors: a tiny GPT-2's reference numbers for gpt2_golden_test.

The PyTorch GPT-2 of bench/peers/gpt2_torch.py (no transformers), computed in float64 and stored as float32:
the C++ test compares spillway's fp32 CPU model against this float64 truth. Parameter names are
spillway's (engine/model/gpt2.h): "wte" (V,C) (spillway pads it to Vp rows; the test copies V),
"wpe" (T,C), "h.{i}.ln_1.weight", "h.{i}.attn.c_attn.weight" (3C,C) (nn.Linear: weight (out,in)),
..., "ln_f.bias"; the LM head is tied to wte.

Contents: "param/<name>", "grad/<name>" (of the mean loss), "inputs" and "targets" (I32, (B,T)),
"logits" (B,T,V), "loss" (1), "adamw_losses" (6) and "adamw_grad_norms" (6, before clipping)
of 6 steps of {zero grad, forward, backward, clip to global norm 1, AdamW} on the same batch,
and the configuration in the metadata.

Runs with Debian's torch 1.13 (/usr/bin/python3) and with torch 2.x:
    /usr/bin/python3 tests/golden/make_gpt2_golden.py [output path]
"""

import copy
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "peers"))
from gpt2_torch import Gpt2, adamw_param_groups  # noqa: E402

N_LAYER = 2
N_HEAD = 2
D_MODEL = 32
SEQ_LEN = 16  # T
VOCAB = 50  # V
BATCH = 3  # B
SEED = 1234
INIT_STD = 0.02  # wte, wpe (GPT-2's std)
# Linear weights: larger than GPT-2's 0.02 so that pre-activations reach the range where the
# tests can tell things apart: with 0.02, GELU's erf form changes the logits by only 4e-6
# relative (under the test's 1e-5 tolerance); with 0.1, by 2e-4 (and the grads by 5e-4), while
# torch's own fp32 stays within 5e-7 of the float64 truth.
LINEAR_STD = 0.1
LR = 1e-2
BETA1, BETA2 = 0.9, 0.95
EPS = 1e-8
WEIGHT_DECAY = 0.1
MAX_GRAD_NORM = 1.0
ADAMW_STEPS = 6
DTYPE = torch.float64


def init_params(model, gen):
    """Embeddings N(0, 0.02), Linear weights N(0, 0.1); biases N(0, 0.02), LayerNorm weights
    1 + N(0, 0.1) and biases N(0, 0.1): all random, so that each is actually tested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=DTYPE)
            if "ln_" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif "ln_" in name:  # LayerNorm bias
                p.copy_(0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(INIT_STD * noise)
            elif name in ("wte", "wpe"):
                p.copy_(INIT_STD * noise)
            else:  # Linear weights
                p.copy_(LINEAR_STD * noise)


def write_safetensors(path, tensors, metadata):
    """A minimal safetensors writer: {name: (dtype, shape, bytes)}, laid out as Hugging Face's."""
    header = {"__metadata__": metadata}
    data = []
    offset = 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        data.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in data:
            f.write(blob)
    os.replace(tmp, path)


def f32(t):
    t = t.detach().to(torch.float32).contiguous().reshape(-1)
    return ("F32", struct.pack("<%df" % t.numel(), *t.tolist()))


def i32(t):
    t = t.detach().to(torch.int64).contiguous().reshape(-1)
    return ("I32", struct.pack("<%di" % t.numel(), *t.tolist()))


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "gpt2_tiny.safetensors")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    model = Gpt2(N_LAYER, N_HEAD, D_MODEL, SEQ_LEN, VOCAB).to(DTYPE)
    init_params(model, gen)
    inputs = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=gen)
    targets = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=gen)
    trained = copy.deepcopy(model)  # the AdamW run starts from the same parameters

    tensors = {}

    def put(name, dtype_and_bytes, shape):
        tensors[name] = (dtype_and_bytes[0], tuple(shape), dtype_and_bytes[1])

    for name, p in model.named_parameters():
        put("param/" + name, f32(p), p.shape)
    put("inputs", i32(inputs), inputs.shape)
    put("targets", i32(targets), targets.shape)

    logits, loss = model(inputs, targets)
    loss.backward()
    put("logits", f32(logits), logits.shape)
    put("loss", f32(loss.reshape(1)), (1,))
    for name, p in model.named_parameters():
        put("grad/" + name, f32(p.grad), p.shape)

    opt = torch.optim.AdamW(adamw_param_groups(trained, WEIGHT_DECAY), lr=LR, betas=(BETA1, BETA2), eps=EPS)
    losses, norms = [], []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad()
        _, step_loss = trained(inputs, targets)
        losses.append(step_loss.item())
        step_loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(trained.parameters(), MAX_GRAD_NORM)))
        opt.step()
    put("adamw_losses", f32(torch.tensor(losses, dtype=DTYPE)), (ADAMW_STEPS,))
    put("adamw_grad_norms", f32(torch.tensor(norms, dtype=DTYPE)), (ADAMW_STEPS,))

    metadata = {
        "n_layer": str(N_LAYER), "n_head": str(N_HEAD), "d_model": str(D_MODEL),
        "seq_len": str(SEQ_LEN), "vocab_size": str(VOCAB), "batch": str(BATCH),
        "seed": str(SEED), "init_std": repr(INIT_STD), "linear_std": repr(LINEAR_STD),
        "lr": repr(LR), "beta1": repr(BETA1), "beta2": repr(BETA2), "eps": repr(EPS),
        "weight_decay": repr(WEIGHT_DECAY), "max_grad_norm": repr(MAX_GRAD_NORM),
        "adamw_steps": str(ADAMW_STEPS),
        "compute_dtype": "float64", "stored_dtype": "float32",
        "torch_version": torch.__version__,
        "generator": "tests/golden/make_gpt2_golden.py",
    }
    write_safetensors(out_path, tensors, metadata)
    print("wrote %s (%d bytes): loss %.6f, adamw losses %s" % (
        out_path, os.path.getsize(out_path), loss.item(),
        " ".join("%.6f" % l for l in losses)))


if __name__ == "__main__":
    main()
