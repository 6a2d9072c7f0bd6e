#!/usr/bin/env python3
"""Hugging Face reference folders for spillway's HF import/export (engine/hf, tests/hf).

Needs transformers (the GPU machine has it; this one does not). Two modes:

  make:   python3 tests/golden/make_hf_gpt2_reference.py --out DIR
      Writes DIR/hf_gpt2/ (a tiny random GPT2LMHeadModel saved by save_pretrained, fp32
      safetensors) with DIR/hf_gpt2/reference.safetensors: "inputs", "targets" (I32, (B,T)),
      "logits" (F32, (B,T,V)) and "loss" (F32, (1)) of the model run in float64, loss = mean
      cross-entropy of logits against `targets` (not HF's shifted labels). Also DIR/hf_llama/:
      a tiny random LlamaForCausalLM (untied head) with the same kind of reference, for the
      Llama name table. The results are committed under tests/golden/hf_gpt2 and hf_llama.

  check:  python3 tests/golden/make_hf_gpt2_reference.py --check EXPORT_DIR... \
              [--reference tests/golden/hf_gpt2 tests/golden/hf_llama] [--out DIR]
      Loads each folder written by `spillway export CONFIG --checkpoint CKPT --output
      EXPORT_DIR --format hf` (or by spillway's HF writer for Llama) with
      AutoModelForCausalLM.from_pretrained and compares its tensors with the reference
      folder of its model_type (bitwise for fp32 exports, within bf16 rounding for bf16 ones)
      and its logits with the reference logits. Prints one line per folder; exits 1 if any
      fails.

Weights are drawn larger than GPT-2's init (as tests/golden/make_gpt2_golden.py does) so that a
wrong transpose, a swapped bias or a missing LayerNorm changes the logits far beyond tolerance.
"""

import argparse
import json
import os
import struct
import sys

import torch

SEED = 4321
BATCH = 2
GPT2 = dict(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=96)
LLAMA = dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
             intermediate_size=64, max_position_embeddings=32, vocab_size=96)


def write_safetensors(path, tensors, metadata):
    """{name: (dtype, shape, bytes)} -> a safetensors file, tensors in name order."""
    header = {"__metadata__": metadata}
    data, offset = [], 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        data.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in data:
            f.write(blob)


def f32(t):
    t = t.detach().to(torch.float32).contiguous().reshape(-1)
    return ("F32", tuple(), struct.pack("<%df" % t.numel(), *t.tolist()))


def i32(t):
    t = t.detach().to(torch.int64).contiguous().reshape(-1)
    return ("I32", tuple(), struct.pack("<%di" % t.numel(), *t.tolist()))


def put(tensors, name, packed, shape):
    tensors[name] = (packed[0], tuple(shape), packed[2])


def randomize(model, gen):
    """Norm weights 1 + N(0, 0.1), norm biases N(0, 0.1), other biases N(0, 0.02), embeddings
    N(0, 0.02), matrices N(0, 0.1): every tensor random, so each one is actually tested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            norm = "ln_" in name or "norm" in name
            if norm and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif norm or name.endswith(".bias"):
                p.copy_((0.1 if norm else 0.02) * noise)
            elif "wte" in name or "wpe" in name or "embed_tokens" in name:
                p.copy_(0.02 * noise)
            else:
                p.copy_(0.1 * noise)


def save(model, folder):
    try:
        model.save_pretrained(folder, safe_serialization=True)
    except TypeError:  # transformers versions without the argument always write safetensors
        model.save_pretrained(folder)


def reference(model, vocab, seq, gen, folder, source):
    """Runs `model` in float64 on fixed inputs and writes folder/reference.safetensors."""
    import transformers
    inputs = torch.randint(0, vocab, (BATCH, seq), generator=gen)
    targets = torch.randint(0, vocab, (BATCH, seq), generator=gen)
    model = model.to(torch.float64).eval()
    with torch.no_grad():
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
    tensors = {}
    put(tensors, "inputs", i32(inputs), inputs.shape)
    put(tensors, "targets", i32(targets), targets.shape)
    put(tensors, "logits", f32(logits), logits.shape)
    put(tensors, "loss", f32(loss.reshape(1)), (1,))
    write_safetensors(os.path.join(folder, "reference.safetensors"), tensors, {
        "batch": str(BATCH), "seq_len": str(seq), "seed": str(SEED),
        "compute_dtype": "float64", "torch_version": torch.__version__,
        "transformers_version": transformers.__version__, "generator": source})
    return loss.item()


def make(out):
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    source = "tests/golden/make_hf_gpt2_reference.py"
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    gpt2_dir = os.path.join(out, "hf_gpt2")
    config = GPT2Config(**GPT2, layer_norm_epsilon=1e-5, activation_function="gelu_new")
    model = GPT2LMHeadModel(config).to(torch.float32)
    randomize(model, gen)
    save(model, gpt2_dir)
    loss = reference(model, GPT2["vocab_size"], GPT2["n_positions"], gen, gpt2_dir, source)
    print("gpt2: wrote %s, loss %.6f" % (gpt2_dir, loss))

    llama_dir = os.path.join(out, "hf_llama")
    config = LlamaConfig(**LLAMA, rope_theta=10000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, hidden_act="silu")
    model = LlamaForCausalLM(config).to(torch.float32)
    randomize(model, gen)
    save(model, llama_dir)
    loss = reference(model, LLAMA["vocab_size"], LLAMA["max_position_embeddings"], gen, llama_dir,
                     source)
    print("llama: wrote %s, loss %.6f" % (llama_dir, loss))
    print("transformers %s, torch %s" % (transformers.__version__, torch.__version__))
    for folder in (gpt2_dir, llama_dir):
        for name in sorted(os.listdir(folder)):
            print("  %s/%s %d bytes" % (os.path.basename(folder), name,
                                        os.path.getsize(os.path.join(folder, name))))


def read_reference(path):
    from safetensors.torch import load_file
    return load_file(path)


def model_type(folder):
    with open(os.path.join(folder, "config.json")) as f:
        return json.load(f)["model_type"]


def check(folders, reference_dirs, out):
    """Each exported folder against the reference folder of its model_type."""
    from transformers import AutoModelForCausalLM
    refs = {model_type(d): d for d in reference_dirs}
    results, ok_all = [], True
    for folder in folders:
        reference_dir = refs[model_type(folder)]
        ref = read_reference(os.path.join(reference_dir, "reference.safetensors"))
        want = AutoModelForCausalLM.from_pretrained(reference_dir, torch_dtype=torch.float32)
        want_state = {k: v for k, v in want.state_dict().items()
                      if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")}
        inputs = ref["inputs"].to(torch.int64)
        want_logits = ref["logits"].to(torch.float64)
        files = sorted(os.listdir(folder))
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
        state = model.state_dict()
        max_diff, bitwise, missing = 0.0, True, []
        for name, w in want_state.items():
            if name not in state:
                missing.append(name)
                continue
            got = state[name]
            if got.shape != w.shape:
                missing.append("%s shape %s != %s" % (name, tuple(got.shape), tuple(w.shape)))
                continue
            bitwise = bitwise and torch.equal(got, w)
            max_diff = max(max_diff, (got.double() - w.double()).abs().max().item())
        with torch.no_grad():
            logits = model.to(torch.float64).eval()(input_ids=inputs).logits
        rel = ((logits - want_logits).norm() / want_logits.norm()).item()
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        dtype = config.get("torch_dtype", config.get("dtype", "?"))
        bf16 = dtype == "bfloat16"
        # bf16 weights: each value within 2^-9 relative; the logits then move by ~1e-2.
        ok = not missing and (bitwise if not bf16 else max_diff < 0.02) and \
            rel < (5e-2 if bf16 else 1e-5)
        ok_all = ok_all and ok
        line = ("%s %s (%s): files %s, dtype %s, tensors bitwise %s (max |diff| %.3g), "
                "logits rel err %.3g%s") % ("OK  " if ok else "FAIL", folder, type(model).__name__,
                                             files, dtype, bitwise, max_diff, rel,
                                             (", missing " + str(missing)) if missing else "")
        print(line)
        results.append(line)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "hf_check.txt"), "w") as f:
            f.write("\n".join(results) + "\n")
    return ok_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="make: output folder; check: where hf_check.txt goes")
    parser.add_argument("--check", nargs="+", help="exported HF folders to validate")
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--reference", nargs="+", default=[
        os.path.join(here, "hf_gpt2"), os.path.join(here, "hf_llama")],
        help="reference folders (made by the make mode), one per model_type")
    args = parser.parse_args()
    if args.check:
        sys.exit(0 if check(args.check, args.reference, args.out) else 1)
    if not args.out:
        parser.error("--out DIR is required to make the reference")
    make(args.out)


if __name__ == "__main__":
    main()
