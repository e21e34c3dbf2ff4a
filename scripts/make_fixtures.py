#!/usr/bin/env python3
"""Train the tiny fixture model family and write it as real Hugging Face checkpoints.

    python3 scripts/make_fixtures.py --out fixtures [--seed 0] [--arch all|qwen2|llama]

Writes, under --out:
  family/base/, family/experts/<task>/   Qwen2 checkpoints (bf16), base + one full
                                         fine-tune per task
  family/eval/<task>.jsonl               held-out {"task","prompt","answer"}
  family/router/<task>.jsonl             router training prompts {"prompt"}
  family/mixed.jsonl                     mixed / out-of-distribution prompts {"prompt"}
  family/accuracy.json                   accuracy matrix, static merges, task-vector norms
  family/reference/<model>.json          transformers outputs from the saved bf16 weights
  llama-tiny/ (+ reference.json)         a Llama-architecture checkpoint, same tokenizer
  README.md                              what all of this is, with the measured tables
                                         (--readme-only rewrites it from the JSON files)

Needs torch, transformers (5.x) and tokenizers. Runs on a GPU when one is visible
(a few minutes in all), otherwise on the CPU (much slower). --quick makes a tiny smoke run.
"""

import argparse
import json
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import transformers  # noqa: E402

from fixtures import checkpoint as ckpt  # noqa: E402
from fixtures import tasks, train  # noqa: E402
from fixtures import tokenizer as toks  # noqa: E402
from fixtures.readme import render_readme, summary_table  # noqa: E402

FULL = dict(
    n_eval=100, n_val=100, n_router=300, vocab=512,
    base_steps=4000, base_lr=2e-3, base_batch=256, base_warmup=200, base_wd=0.05,
    expert_max_steps=1500, expert_min_steps=100, expert_lr=1.5e-4, expert_batch=128,
    expert_warmup=50, expert_target=0.95, check_every=50,
    llama_steps=2000, llama_lr=3e-3, ta_lambdas=(0.5, 1.0), log_every=500,
)
QUICK = dict(FULL, n_eval=12, n_val=12, n_router=8, base_steps=30, base_batch=32,
             base_warmup=5, expert_max_steps=20, expert_min_steps=10, expert_batch=16,
             check_every=10, llama_steps=20, log_every=10)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (e.g. fixtures)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", choices=("all", "qwen2", "llama"), default="all",
                   help="qwen2: the family only; llama: llama-tiny only; all: both")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (useless models)")
    p.add_argument("--readme-only", action="store_true",
                   help="only rewrite README.md from the accuracy.json files under --out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training setting, e.g. --set expert_lr=3e-4 (repeatable)")
    return p.parse_args()


def seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def environment(device: str) -> dict:
    """Versions and device that produced the fixtures."""
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "device": name}


def evaluate(model, tok, enc, splits, state, eos, device) -> dict:
    """One accuracy row: exact match per task and base skill, mean over expert tasks,
    filler loss."""
    model.load_state_dict(state)
    model.eval()
    row = {t: train.exact_match(tok, model, splits.eval[t], eos, device)
           for t in tasks.EXPERT_TASKS + tasks.BASE_SKILLS}
    row["mean"] = sum(row[t] for t in tasks.EXPERT_TASKS) / len(tasks.EXPERT_TASKS)
    row["filler_loss"] = train.filler_loss(enc, model, splits.filler_eval)
    return row


def reference_prompts(splits) -> tuple:
    """3 eval prompts per expert task, 1 copy prompt, 1 filler opening, 1 chat message."""
    prompts = [p for t in tasks.EXPERT_TASKS for p, _ in splits.eval[t][:3]]
    prompts.append(splits.eval["copy"][0][0])
    prompts.append(" ".join(splits.filler_eval[0].split()[:3]))
    chat_prompt = splits.eval["add"][3][0]
    messages = [{"role": "user", "content": chat_prompt[:-len(" =")]}]
    return prompts, messages


def write_prompt_sets(root: str, splits) -> None:
    for t in tasks.EXPERT_TASKS:
        ckpt.write_jsonl(os.path.join(root, "eval", f"{t}.jsonl"),
                         [{"task": t, "prompt": p, "answer": a} for p, a in splits.eval[t]])
        ckpt.write_jsonl(os.path.join(root, "router", f"{t}.jsonl"),
                         [{"prompt": p} for p in splits.router[t]])
    ckpt.write_jsonl(os.path.join(root, "mixed.jsonl"),
                     [{"prompt": p} for p in tasks.MIXED_PROMPTS])


def make_family(cfg, args, tok, ids, splits, device) -> dict:
    root = os.path.join(args.out, "family")
    vocab = tok.get_vocab_size()
    enc = train.Encoder(tok, ids, device)
    seed_all(args.seed)
    model = train.build_model("qwen2", vocab, ids).to(device)
    evaluator = train.build_model("qwen2", vocab, ids).to(device)
    names = train.param_names(model)
    print(f"qwen2 family: {train.count_params(model)} parameters, vocab {vocab}", flush=True)

    t0 = time.time()
    base_mix = tasks.Mixture(tasks.BASE_MIXTURE, splits, random.Random(f"{args.seed}:base"))
    train.train(model, base_mix, enc, steps=cfg["base_steps"], lr=cfg["base_lr"],
                batch_size=cfg["base_batch"], warmup=cfg["base_warmup"],
                weight_decay=cfg["base_wd"], log_every=cfg["log_every"], name="base")
    base = train.canonical_state(model)
    timings = {"base_train_s": time.time() - t0}

    experts, steps = {}, {}
    for i, task in enumerate(tasks.EXPERT_TASKS):
        t1 = time.time()
        model.load_state_dict(base)
        seed_all(args.seed * 1000 + i + 1)
        mix = tasks.Mixture(tasks.expert_mixture(task), splits,
                            random.Random(f"{args.seed}:expert:{task}"))

        def check(step, task=task):
            acc = train.exact_match(tok, model, splits.val[task], ids["eos"], device)
            print(f"  [{task}] step {step}: val exact match {acc:.2f}", flush=True)
            return acc >= cfg["expert_target"]

        steps[task], _ = train.train(
            model, mix, enc, steps=cfg["expert_max_steps"], lr=cfg["expert_lr"],
            batch_size=cfg["expert_batch"], warmup=cfg["expert_warmup"], weight_decay=0.0,
            schedule="constant", log_every=cfg["log_every"], check=check,
            check_every=cfg["check_every"], min_steps=cfg["expert_min_steps"], name=task)
        experts[task] = train.canonical_state(model)
        timings[f"expert_{task}_s"] = time.time() - t1

    t2 = time.time()
    taus = {t: train.task_vector(e, base) for t, e in experts.items()}
    rows = {"base": evaluate(evaluator, tok, enc, splits, base, ids["eos"], device)}
    for t, e in experts.items():
        rows[f"expert:{t}"] = evaluate(evaluator, tok, enc, splits, e, ids["eos"], device)
    oracle = {t: rows[f"expert:{t}"][t] for t in tasks.EXPERT_TASKS}
    oracle["mean"] = sum(oracle.values()) / len(tasks.EXPERT_TASKS)
    rows["expert_oracle"] = oracle
    tau_list = [taus[t] for t in tasks.EXPERT_TASKS]
    rows["average"] = evaluate(evaluator, tok, enc, splits,
                               train.merge(base, tau_list, 1.0 / len(tau_list)), ids["eos"], device)
    for lam in cfg["ta_lambdas"]:
        rows[f"task_arithmetic_{lam}"] = evaluate(
            evaluator, tok, enc, splits, train.merge(base, tau_list, lam), ids["eos"], device)
    timings["eval_s"] = time.time() - t2

    norms = {t: train.rel_norm(taus[t], base, names) for t in tasks.EXPERT_TASKS}
    cos = {a: {b: train.cosine(taus[a], taus[b], names) for b in tasks.EXPERT_TASKS if b != a}
           for a in tasks.EXPERT_TASKS}

    t3 = time.time()
    saver = train.build_model("qwen2", vocab, ids)
    ckpt.save_checkpoint(saver, base, tok, ids, os.path.join(root, "base"))
    for t, e in experts.items():
        ckpt.save_checkpoint(saver, e, tok, ids, os.path.join(root, "experts", t))
    write_prompt_sets(root, splits)
    prompts, messages = reference_prompts(splits)
    ckpt.write_json(os.path.join(root, "reference", "base.json"),
                    ckpt.reference(os.path.join(root, "base"), prompts, messages))
    for t in tasks.EXPERT_TASKS:
        ckpt.write_json(os.path.join(root, "reference", f"{t}.json"),
                        ckpt.reference(os.path.join(root, "experts", t), prompts, messages))
    timings["save_reference_s"] = time.time() - t3

    result = {
        "tasks": list(tasks.EXPERT_TASKS),
        "base_skills": list(tasks.BASE_SKILLS),
        "scoring": "greedy decoding of at most 10 new tokens from the prompt encoded with <s>; "
                   "exact match of the text before the first </s>, both sides stripped; "
                   "filler_loss is mean next-token cross-entropy (nats) on 200 held-out "
                   "filler sentences; mean is over the expert tasks",
        "merges": "computed in float32 from the bf16 weights, rounded to bf16; average = "
                  "B + mean(tau); task_arithmetic_L = B + L * sum(tau)",
        "rows": rows,
        "task_vector_rel_norm": norms,
        "task_vector_cosine": cos,
        "expert_steps": steps,
        "params": train.count_params(model),
        "vocab_size": vocab,
        "architecture": dict(train.ARCHS["qwen2"]),
        "training": {k: v for k, v in cfg.items()
                     if k.startswith(("base_", "expert_")) or k == "check_every"},
        "n_eval": cfg["n_eval"],
        "n_val": cfg["n_val"],
        "n_router": cfg["n_router"],
        "seed": args.seed,
        "generated_with": environment(device),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    ckpt.write_json(os.path.join(root, "accuracy.json"), result)
    return result


def make_llama(cfg, args, tok, ids, splits, device) -> dict:
    root = os.path.join(args.out, "llama-tiny")
    vocab = tok.get_vocab_size()
    enc = train.Encoder(tok, ids, device)
    seed_all(args.seed + 7)
    model = train.build_model("llama", vocab, ids).to(device)
    print(f"llama-tiny: {train.count_params(model)} parameters", flush=True)
    mix = tasks.Mixture(tasks.BASE_MIXTURE, splits, random.Random(f"{args.seed}:llama"))
    t0 = time.time()
    train.train(model, mix, enc, steps=cfg["llama_steps"], lr=cfg["llama_lr"],
                batch_size=cfg["base_batch"], warmup=cfg["base_warmup"],
                weight_decay=cfg["base_wd"], log_every=cfg["log_every"], name="llama")
    state = train.canonical_state(model)
    row = evaluate(model, tok, enc, splits, state, ids["eos"], device)
    saver = train.build_model("llama", vocab, ids)
    ckpt.save_checkpoint(saver, state, tok, ids, root)
    prompts, messages = reference_prompts(splits)
    ckpt.write_json(os.path.join(root, "reference.json"), ckpt.reference(root, prompts, messages))
    result = {"row": row, "params": train.count_params(model),
              "architecture": dict(train.ARCHS["llama"]), "steps": cfg["llama_steps"],
              "seed": args.seed, "generated_with": environment(device),
              "train_s": round(time.time() - t0, 1)}
    ckpt.write_json(os.path.join(root, "accuracy.json"), result)
    return result


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def write_readme(out: str) -> tuple:
    """Rewrite out/README.md from the accuracy.json files; returns (family, llama, sizes)."""
    loaded = {}
    for sub, name in (("family", "accuracy.json"), ("llama-tiny", "accuracy.json")):
        path = os.path.join(out, sub, name)
        if os.path.isfile(path):
            with open(path) as f:
                loaded[sub] = json.load(f)
    sizes = {sub: folder_bytes(os.path.join(out, sub)) for sub in loaded}
    family, llama = loaded.get("family"), loaded.get("llama-tiny")
    if family is not None and llama is not None:
        with open(os.path.join(out, "README.md"), "w") as f:
            f.write(render_readme(family, llama, sizes))
    else:
        print("note: README.md not written; it needs both family/ and llama-tiny/")
    return family, llama, sizes


def main() -> None:
    args = parse_args()
    if args.readme_only:
        print(summary_table(*write_readme(args.out)))
        return
    cfg = dict(QUICK if args.quick else FULL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg or isinstance(cfg[key], tuple):
            raise SystemExit(f"Cannot apply --set {item}: unknown setting '{key}'; "
                             f"known: {', '.join(k for k in cfg if not isinstance(cfg[k], tuple))}")
        cfg[key] = type(cfg[key])(float(value)) if not isinstance(cfg[key], str) else value
    transformers.utils.logging.disable_progress_bar()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    started = time.time()
    print(f"device {device}, torch {torch.__version__}, seed {args.seed}, "
          f"{'quick' if args.quick else 'full'} run", flush=True)

    for sub in ("family", "llama-tiny"):
        if args.arch in ("all", "qwen2" if sub == "family" else "llama"):
            shutil.rmtree(os.path.join(args.out, sub), ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)

    splits = tasks.Splits(args.seed, cfg["n_eval"], cfg["n_val"], cfg["n_router"])
    tok = toks.train_tokenizer(tasks.corpus_for_tokenizer(args.seed), cfg["vocab"])
    ids = toks.special_ids(tok)
    print(f"tokenizer: vocab {tok.get_vocab_size()}, special ids {ids}", flush=True)

    if args.arch != "llama":
        make_family(cfg, args, tok, ids, splits, device)
    if args.arch != "qwen2":
        make_llama(cfg, args, tok, ids, splits, device)
    print()
    print(summary_table(*write_readme(args.out)))
    print(f"total {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
