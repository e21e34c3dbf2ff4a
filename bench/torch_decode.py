"""PyTorch eager peer for the GPU decode benchmark (bench/RESULTS.md).

Runs transformers' Qwen2ForCausalLM with the full Qwen2.5-0.5B configuration,
random weights in bf16, `generate` greedy with eager attention, at batch 1 and
8, and prints one JSON object: time to first token, decode tokens/s, and the
device-to-device copy bandwidth (bytes read + written) measured in the same
run. Usage: python3 bench/torch_decode.py [--prompt 16] [--tokens 64]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def copy_bandwidth() -> float:
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1000)
    return 2 * n / statistics.median(times) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    cfg = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(dtype=torch.bfloat16, device="cuda").eval()
    out = {"peer": "pytorch eager transformers generate", "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0), "copy_gbps": copy_bandwidth(), "runs": []}
    for batch in (1, 8):
        ids = torch.randint(0, cfg.vocab_size, (batch, args.prompt), device="cuda")
        kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
        with torch.no_grad():
            model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
            t1, tn = [], []
            for _ in range(5):
                torch.cuda.synchronize(); s = time.perf_counter()
                model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
                torch.cuda.synchronize(); t1.append(time.perf_counter() - s)
                s = time.perf_counter()
                model.generate(ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, **kw)
                torch.cuda.synchronize(); tn.append(time.perf_counter() - s)
        ttft = statistics.median(t1)
        step = (statistics.median(tn) - ttft) / (args.tokens - 1)
        out["runs"].append({"batch": batch, "ttft_ms": ttft * 1000, "step_s": step,
                            "tokens_per_s": batch / step})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
