"""./run gpu-check without a GPU stops at once with one line that says so (tests/helpers/gpu_check.py)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_without_cuda_says_it_needs_a_gpu(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}           # hides any GPU this machine has
    done = subprocess.run([sys.executable, "-m", "tests.helpers.gpu_check", str(tmp_path / "figures.json")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "no CUDA device: ./run gpu-check needs a GPU", done.stderr
    assert not (tmp_path / "figures.json").exists()


def test_the_run_script_has_the_gpu_check_command():
    assert 'gpu-check) setup; exec "$VENV/bin/python" -m tests.helpers.gpu_check' in (ROOT / "run").read_text()


def test_each_figure_of_the_gpu_check_is_computed_on_a_tiny_model_on_the_cpu(monkeypatch):
    """The figures' code runs (on the CPU, tiny model, few rounds): fast vs plain, ceiling, bound."""
    import torch

    from tests.helpers import gpu_check
    from tests.engine.test_sweep_exact import tiny_model

    monkeypatch.setattr(gpu_check, "CHECK_LAYERS", [0, 2])
    monkeypatch.setattr(gpu_check, "PLAIN_ROUNDS", 4)
    model = tiny_model("gpt2", layers=3, heads=2, head_dim=8)
    ids = torch.randint(0, 100, (1, 9), generator=torch.Generator().manual_seed(0))
    batch = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    for args in ((ids, 4, "block"), (ids, 4, "final"), (ids, list(range(9)), "final"),
                 (batch, [2, 2], "block", mask, [9, 6])):
        case = gpu_check.measure_case(model, *args)
        assert case["within_bound"] and case["speedup"] > 0 and case["flop_ceiling"] > 1, case
        assert case["scenarios"] == len(args[1] if isinstance(args[1], list) else [args[1]]) * 3 * 2
