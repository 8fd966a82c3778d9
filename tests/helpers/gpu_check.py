"""./run gpu-check [figures.json]: what only a CUDA machine can tell, in one command.

1. The `gpu`-marked tests (pytest -m gpu): the fast sweep on CUDA in every dtype within the
   engine's bound, the spread run where two GPUs exist.
2. Figures on the GPT-2 Large shape (36 blocks x 20 heads x 1280, random weights, 9 tokens),
   in float32 and bfloat16, each against the steady plain loop (tests/helpers/baselines.py: one hooked
   forward pass per scenario, warmed up, medians, rounds alternating with the fast calls):
     single token     sweep(model, ids, 4, readout), readouts block and final: 720 scenarios
     every position   sweep(model, ids, range(9), "final"): 6,480 scenarios
     padded batch     8 prompts of 5-9 tokens, right-padded, token 2 of each, "block": 5,760
   with the FLOP-count ceiling of each ratio, the largest relative difference from the
   naive engine on three layers against the dtype's bound (hooks/precision.py), and the peak
   GPU memory of the fast call.
   Written as one JSON file (default gpu_check.json); the exit status is pytest's, or 1 when
   a figure is outside its dtype's bound.

Without a CUDA device it stops at once with one line (tests/engine/test_gpu_check.py).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = "no CUDA device: ./run gpu-check needs a GPU"
DTYPES = ("float32", "bfloat16")
CHECK_LAYERS = [0, 17, 35]
PLAIN_ROUNDS = 60               # plain passes timed per case, cycling over CHECK_LAYERS x heads
FAST_ROUNDS = 5


def _timed(fn, sync) -> float:
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def measure_case(model, ids, token, readout, mask=None, prompt_lengths=None) -> dict:
    """Fast vs the steady plain loop for one case, on the model's device and dtype.

    token: an int, a list of positions of the one prompt of ids [1, seq], or one position per
    prompt of a right-padded batch ids [B, seq] (then mask and prompt_lengths)."""
    import torch

    from hooks import sweep
    from hooks.precision import bound
    from tests.helpers.baselines import PlainLoop, ceiling, synchronize

    sync = lambda: synchronize(model)      # noqa: E731  (also runs on the CPU: tests/engine/test_gpu_check.py)
    on_gpu = next(model.parameters()).is_cuda
    tokens = token if isinstance(token, (list, tuple)) else [token]
    batch = ids.shape[0]
    if batch > 1:
        jobs = [(prompt_lengths[b], tokens[b]) for b in range(batch)]
        scenario_tokens = [(b, tokens[b]) for b in range(batch)]
    else:
        jobs = [(ids.shape[1], t) for t in tokens]
        scenario_tokens = [(0, t) for t in tokens]
    layout_heads = model.config.num_attention_heads
    n_layers = model.config.num_hidden_layers
    arg = torch.tensor(tokens, device=ids.device) if batch > 1 else (tokens if len(tokens) > 1 else tokens[0])

    def fast():
        return sweep(model, ids, arg, readout, attention_mask=mask)
    # The plain loop of a padded batch: each prompt alone, one pass per (prompt, layer, head).
    alone = {b: ids[b:b + 1, :prompt_lengths[b]] if batch > 1 else ids for b, _ in scenario_tokens}
    loops = [PlainLoop(model, alone[b], [(L, h, t) for L in CHECK_LAYERS for h in range(layout_heads)])
             for b, t in scenario_tokens]
    for _ in range(2):                                        # warm-up, both sides
        fast()
        loops[0].next()
    sync()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    fast_s, plain_s = [], []
    per_fast = max(1, PLAIN_ROUNDS // FAST_ROUNDS)
    for r in range(PLAIN_ROUNDS):
        if r % per_fast == 0:
            fast_s.append(_timed(fast, sync))
        plain_s.append(_timed(loops[r % len(loops)].next, sync))
    peak = torch.cuda.max_memory_allocated() if on_gpu else float("nan")
    scenarios = len(scenario_tokens) * n_layers * layout_heads
    ratio = statistics.median(plain_s) * scenarios / statistics.median(fast_s)
    got = fast()
    naive = sweep(model, ids, arg, readout, attention_mask=mask, layers=CHECK_LAYERS, engine="naive")
    got = got[:, CHECK_LAYERS] if got.ndim == 5 else got[CHECK_LAYERS]     # [jobs,] layers, heads, pos, d
    err = (got - naive).nan_to_num().abs().amax(dim=(-2, -1))
    rel = (err / naive.nan_to_num().abs().amax(dim=(-2, -1)).clamp(min=1.0)).max().item()
    limit = bound(next(model.parameters()).dtype)
    return {"readout": readout, "scenarios": scenarios, "fast_s": statistics.median(fast_s),
            "plain_per_scenario_s": statistics.median(plain_s), "speedup": ratio,
            "flop_ceiling": ceiling(model, prompt_lengths or [ids.shape[1]], jobs, readout),
            "peak_gpu_gib": peak / 2**30, "max_relative_error_vs_naive": rel, "bound": limit,
            "within_bound": rel <= limit}


def figures() -> dict:
    import torch

    from tests.benchmarks.test_sweep_benchmarks import gpt2_large_shape

    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": {}}
    g = torch.Generator().manual_seed(0)
    for dtype in DTYPES:
        model = gpt2_large_shape().to("cuda", getattr(torch, dtype))
        ids = torch.randint(0, 50257, (1, 9), generator=g).cuda()
        lengths = [9, 8, 7, 6, 5, 9, 7, 5]
        batch = torch.randint(0, 50257, (len(lengths), 9), generator=g).cuda()
        mask = torch.zeros_like(batch)
        for b, n in enumerate(lengths):
            mask[b, :n] = 1
        cases = {"single token, block": (ids, 4, "block", None, None),
                 "single token, final": (ids, 4, "final", None, None),
                 "every position, final": (ids, list(range(9)), "final", None, None),
                 "padded batch, block": (batch, [2] * len(lengths), "block", mask, lengths)}
        for name, (x, token, readout, m, ls) in cases.items():
            out["cases"][f"{dtype}: {name}"] = measure_case(model, x, token, readout, m, ls)
            print(f"{dtype}: {name}: {json.dumps(out['cases'][f'{dtype}: {name}'])}", flush=True)
        del model
        torch.cuda.empty_cache()
    return out


def main(argv: list[str]) -> int:
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    path = Path(argv[0] if argv else "gpu_check.json")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:xdist", "-q", "tests/"],
                           cwd=ROOT).returncode
    found = figures()
    found["gpu_tests_exit_status"] = tests
    path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    print(f"figures: {path}")
    outside = [name for name, case in found["cases"].items() if not case["within_bound"]]
    if outside:
        print(f"outside the dtype's bound: {', '.join(outside)}", file=sys.stderr)
    return tests or (1 if outside else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
