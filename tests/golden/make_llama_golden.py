#!/usr/bin/env python3
"""Writes tests/golden/llama_tiny.safetensors: a tiny Llama's reference numbers for llama_golden_test.

A pure-PyTorch transcription of Hugging Face's LlamaForCausalLM (no transformers needed):
RMSNorm computed in at least fp32 (HF upcasts to fp32; here the whole model runs in float64, so
the upcast keeps float64), rotary embeddings with rotate_half (inv_freq = theta^(-2i/hs), cos and
sin of cat(freqs, freqs)), grouped-query attention with repeat_kv and a causal softmax, the
SwiGLU MLP down(silu(gate(x)) * up(x)), no biases, a final RMSNorm and an untied lm_head. The
loss is the mean cross-entropy over the targets that are not -1. Computed in float64 and stored
as float32: the C++ test compares spillway's fp32 CPU model against this float64 truth.

Parameter names are spillway's (engine/model/llama.h), which are Hugging Face's without the
"model." prefix: "embed_tokens.weight" (V,C) (spillway pads it to Vp rows; the test copies V),
"layers.{i}.input_layernorm.weight", "layers.{i}.self_attn.q_proj.weight" (NH*hs,C), ...,
"norm.weight", "lm_head.weight" (V,C).

Contents: "param/<name>", "grad/<name>" (of the mean loss), "inputs" and "targets" (I32, (B,T);
one target is -1, ignored), "logits" (B,T,V), "loss" (1), and the configuration in the metadata.

With transformers installed (the GPU machine has it), the same weights are also run through
transformers.LlamaForCausalLM and its logits must agree (HF computes its RMSNorm and rotary
tables in fp32, hence a 1e-5 tolerance); pass --require-hf to fail when transformers is absent.

Runs with Debian's torch 1.13 (/usr/bin/python3) and with torch 2.x:
    /usr/bin/python3 tests/golden/make_llama_golden.py [output path] [--require-hf]
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gpt2_golden import f32, i32, write_safetensors  # noqa: E402

N_LAYER = 2
N_HEAD = 4
N_KV_HEAD = 2  # grouped-query attention: 2 query heads per key/value head
D_MODEL = 32  # head size 8
FFN_HIDDEN = 48
SEQ_LEN = 16  # T
VOCAB = 50  # V
BATCH = 3  # B
ROPE_THETA = 10000.0
RMS_NORM_EPS = 1e-6
SEED = 1234
EMBED_STD = 0.02
# Linear weights larger than Llama's 0.02 so that every part of the model moves the logits well
# above fp32 rounding (as in make_gpt2_golden.py).
LINEAR_STD = 0.1
DTYPE = torch.float64


class RMSNorm(nn.Module):
    def __init__(self, c, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        input_dtype = x.dtype
        h = x.to(torch.promote_types(input_dtype, torch.float32))
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return self.weight * h.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(T, hs, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.int64).to(dtype) / hs))
    freqs = torch.outer(torch.arange(T, dtype=dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # (T, hs)


def repeat_kv(x, n_rep):
    b, nkv, t, hs = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, nkv, n_rep, t, hs).reshape(b, nkv * n_rep, t, hs)


class Attention(nn.Module):
    def __init__(self, c, n_head, n_kv_head):
        super().__init__()
        self.n_head, self.n_kv_head, self.hs = n_head, n_kv_head, c // n_head
        self.q_proj = nn.Linear(c, n_head * self.hs, bias=False)
        self.k_proj = nn.Linear(c, n_kv_head * self.hs, bias=False)
        self.v_proj = nn.Linear(c, n_kv_head * self.hs, bias=False)
        self.o_proj = nn.Linear(n_head * self.hs, c, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_head, self.hs).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_head, self.hs).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_head, self.hs).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, self.n_head // self.n_kv_head)
        v = repeat_kv(v, self.n_head // self.n_kv_head)
        scores = q @ k.transpose(2, 3) / math.sqrt(self.hs)
        mask = torch.full((t, t), float("-inf"), dtype=x.dtype).triu(1)
        p = F.softmax(scores + mask, dim=-1, dtype=torch.promote_types(x.dtype, torch.float32))
        y = (p.to(x.dtype) @ v).transpose(1, 2).reshape(b, t, self.n_head * self.hs)
        return self.o_proj(y)


class Mlp(nn.Module):
    def __init__(self, c, f):
        super().__init__()
        self.gate_proj = nn.Linear(c, f, bias=False)
        self.up_proj = nn.Linear(c, f, bias=False)
        self.down_proj = nn.Linear(f, c, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, n_head, n_kv_head, f, eps):
        super().__init__()
        self.input_layernorm = RMSNorm(c, eps)
        self.self_attn = Attention(c, n_head, n_kv_head)
        self.post_attention_layernorm = RMSNorm(c, eps)
        self.mlp = Mlp(c, f)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    """LlamaForCausalLM's math; parameter names are HF's without "model."."""

    def __init__(self, n_layer, n_head, n_kv_head, c, f, vocab, eps, theta):
        super().__init__()
        self.theta = theta
        self.hs = c // n_head
        self.embed_tokens = nn.Embedding(vocab, c)
        self.layers = nn.ModuleList(Layer(c, n_head, n_kv_head, f, eps) for _ in range(n_layer))
        self.norm = RMSNorm(c, eps)
        self.lm_head = nn.Linear(c, vocab, bias=False)

    def forward(self, inputs, targets):
        x = self.embed_tokens(inputs)
        cos, sin = rotary_cos_sin(inputs.shape[1], self.hs, self.theta, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.norm(x))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-1)
        return logits, loss


def init_params(model, gen):
    """Embedding N(0, 0.02), Linear weights N(0, 0.1), RMSNorm weights 1 + N(0, 0.1): all
    random, so that each is actually tested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=DTYPE)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name == "embed_tokens.weight":
                p.copy_(EMBED_STD * noise)
            else:
                p.copy_(LINEAR_STD * noise)


def check_against_transformers(model, inputs, logits, require):
    """Runs the same weights through transformers.LlamaForCausalLM; its logits must agree."""
    try:
        import transformers
    except ImportError:
        if require:
            raise
        print("transformers not installed: skipped the LlamaForCausalLM cross-check")
        return
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=D_MODEL, intermediate_size=FFN_HIDDEN,
        num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD, num_key_value_heads=N_KV_HEAD,
        max_position_embeddings=SEQ_LEN, rms_norm_eps=RMS_NORM_EPS, rope_theta=ROPE_THETA,
        tie_word_embeddings=False, attention_bias=False, hidden_act="silu",
        attn_implementation="eager")
    hf = transformers.LlamaForCausalLM(cfg).to(DTYPE)
    state = {("" if name == "lm_head.weight" else "model.") + name: p
             for name, p in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    assert not missing and not unexpected, (missing, unexpected)
    with torch.no_grad():
        hf_logits = hf(input_ids=inputs).logits
    err = ((hf_logits - logits).norm() / logits.norm()).item()
    print("transformers %s LlamaForCausalLM: logits relative error %.3g" % (
        transformers.__version__, err))
    assert err < 1e-5, err


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    require_hf = "--require-hf" in sys.argv[1:]
    out_path = args[0] if args else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "llama_tiny.safetensors")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    model = Llama(N_LAYER, N_HEAD, N_KV_HEAD, D_MODEL, FFN_HIDDEN, VOCAB, RMS_NORM_EPS,
                  ROPE_THETA).to(DTYPE)
    init_params(model, gen)
    inputs = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=gen)
    targets = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=gen)
    targets[1, 5] = -1  # an ignored position

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

    check_against_transformers(model, inputs, logits.detach(), require_hf)

    metadata = {
        "n_layer": str(N_LAYER), "n_head": str(N_HEAD), "n_kv_head": str(N_KV_HEAD),
        "d_model": str(D_MODEL), "ffn_hidden": str(FFN_HIDDEN), "seq_len": str(SEQ_LEN),
        "vocab_size": str(VOCAB), "batch": str(BATCH), "rope_theta": repr(ROPE_THETA),
        "rms_norm_eps": repr(RMS_NORM_EPS), "seed": str(SEED), "embed_std": repr(EMBED_STD),
        "linear_std": repr(LINEAR_STD), "compute_dtype": "float64", "stored_dtype": "float32",
        "torch_version": torch.__version__,
        "generator": "tests/golden/make_llama_golden.py",
    }
    write_safetensors(out_path, tensors, metadata)
    print("wrote %s (%d bytes): loss %.6f" % (out_path, os.path.getsize(out_path), loss.item()))


if __name__ == "__main__":
    main()
