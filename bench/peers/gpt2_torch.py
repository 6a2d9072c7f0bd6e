"""GPT-2 in PyTorch with exactly spillway's math and tensor names.

Shared by the golden-reference generator (tests/golden/make_gpt2_golden.py) and the benchmark
peers (bench/peers/*.py). Names match spillway's Units: "wte" (V, C), "wpe" (T, C),
"h.{i}.ln_1.weight", "h.{i}.attn.c_attn.weight" (3C, C) with qkv = [q | k | v] and head h at
columns [h*hs, (h+1)*hs), ..., "ln_f.bias"; nn.Linear weights are (out, in); the LM head is tied
to wte; GELU is the tanh approximation; LayerNorm eps is 1e-5; the loss is the mean
cross-entropy over all targets.

fast=True uses PyTorch's fused kernels (scaled_dot_product_attention, gelu(approximate="tanh"))
where this PyTorch has them: the same function, for timing peers. The default spells every
step out, for references in float64.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class Attention(nn.Module):
    def __init__(self, c, n_head, fast):
        super().__init__()
        self.n_head = n_head
        self.fast = fast and hasattr(F, "scaled_dot_product_attention")
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)

    def forward(self, x):
        b, t, c = x.shape
        hs = c // self.n_head
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, hs).transpose(1, 2) for z in (q, k, v))
        if self.fast:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
            y = F.softmax(scores, dim=-1) @ v  # (B, NH, T, hs)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Mlp(nn.Module):
    def __init__(self, c, fast):
        super().__init__()
        self.fast = fast
        self.c_fc = nn.Linear(c, 4 * c)
        self.c_proj = nn.Linear(4 * c, c)

    def forward(self, x):
        h = self.c_fc(x)
        return self.c_proj(F.gelu(h, approximate="tanh") if self.fast else gelu_tanh(h))


class Block(nn.Module):
    def __init__(self, c, n_head, fast):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c, eps=1e-5)
        self.attn = Attention(c, n_head, fast)
        self.ln_2 = nn.LayerNorm(c, eps=1e-5)
        self.mlp = Mlp(c, fast)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt2(nn.Module):
    def __init__(self, n_layer, n_head, d_model, seq_len, vocab_size, fast=False):
        super().__init__()
        self.vocab_size = vocab_size
        self.wte = nn.Parameter(torch.empty(vocab_size, d_model))
        self.wpe = nn.Parameter(torch.empty(seq_len, d_model))
        self.h = nn.ModuleList([Block(d_model, n_head, fast) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)

    def forward(self, inputs, targets):
        t = inputs.shape[1]
        x = self.wte[inputs] + self.wpe[:t]
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.t()
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss


def decays(param):
    """Matrices and embeddings decay; biases and LayerNorm weights do not (as TensorSpec)."""
    return param.dim() >= 2


def adamw_param_groups(model, weight_decay):
    params = list(model.parameters())
    return [
        {"params": [p for p in params if decays(p)], "weight_decay": weight_decay},
        {"params": [p for p in params if not decays(p)], "weight_decay": 0.0},
    ]


def init_for_bench(model):
    """The benchmarks' initialisation: LayerNorm weights 1, matrices N(0, 0.02), the rest 0."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "ln_" in name and name.endswith(".weight"):
                param.fill_(1.0)
            elif param.dim() >= 2:
                param.normal_(0.0, 0.02)
            else:
                param.zero_()
