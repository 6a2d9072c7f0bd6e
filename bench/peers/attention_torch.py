"""Times PyTorch's causal scaled_dot_product_attention, forward and backward, in bf16 on the GPU:
the peer of bench/attention.cu, on the same shapes and with the same FLOP count (forward
2 B NH T^2 HS for the causal half, backward 2.5 times that).

usage: python3 attention_torch.py [--reps N] [--backend B] B:T:NH:HS ...
--backend picks PyTorch's kernel (flash, cudnn, efficient); the default is PyTorch's own choice.
"""
import argparse
import contextlib

import torch
import torch.nn.functional as F


def run(b, t, nh, hs, reps, backend):
    q, k, v = (torch.randn(b, nh, t, hs, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn(b, nh, t, hs, device="cuda", dtype=torch.bfloat16)
    start, mid, stop = (torch.cuda.Event(enable_timing=True) for _ in range(3))
    fwd_ms = bwd_ms = float("inf")
    for r in range(reps + 1):
        start.record()
        with backend_context(backend):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        mid.record()
        out.backward(dout)
        stop.record()
        torch.cuda.synchronize()
        if r > 0:
            fwd_ms = min(fwd_ms, start.elapsed_time(mid))
            bwd_ms = min(bwd_ms, mid.elapsed_time(stop))
        q.grad = k.grad = v.grad = None
    flop = 2.0 * b * nh * t * t * hs
    name = f"SDPA {backend}" if backend else "SDPA"
    print(f"| PyTorch {torch.__version__} {name} bf16 | B={b} T={t} NH={nh} HS={hs} | {fwd_ms:.3f} | "
          f"{flop / fwd_ms / 1e9:.1f} | {bwd_ms:.3f} | {2.5 * flop / bwd_ms / 1e9:.1f} |")


def backend_context(backend):
    if not backend:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    kinds = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION}
    return sdpa_kernel(kinds[backend])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--backend", choices=["flash", "cudnn", "efficient"])
    parser.add_argument("shapes", nargs="*",
                        default=["16:1024:12:64", "8:1024:25:64", "8:1024:24:128"])
    args = parser.parse_args()
    for shape in args.shapes:
        run(*map(int, shape.split(":")), args.reps, args.backend)


if __name__ == "__main__":
    main()
