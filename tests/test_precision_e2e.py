"""Every method end to end through the real CLI in bf16 autocast on the CPU; torch.compile."""

import math
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from test_cli_e2e import TINY, invoke

from bench.config import TrainConfig
from bench.data.loader import train_loader
from bench.engine.assemble import build_method, cell_data
from bench.engine.device import Placement, place
from bench.engine.tracking import client, experiment_id
from bench.engine.trainer import Trainer
from bench.suite.load import load_suite

METHODS = ["baseline", "iaunet", "stal", "rgsa-rgtr"]
#: bf16 convolutions take torch's slow reference kernels on CPUs without native bf16 (16x the
#: fp32 time on an AVX2 machine): every method's code path in bf16, on small tensors (a ResNet
#: of one block a stage, STAL's part networks on 2 x 2 RoIs)
SMALL = {
    "model": {"backbone": "resnet18", "kwargs": {"layers": [1, 1, 1, 1]}},
    "method_config": {"stal": {"roi_size": 2}},
}


def bf16_suite(seed: int, train: dict | None = None) -> dict:
    """TINY with every method, one seed, the small network; ``train`` replaces its train."""
    defaults = {**TINY["defaults"], "model": SMALL["model"]}
    if train is not None:
        defaults["train"] = train
    return {
        **TINY,
        "methods": METHODS,
        "ablations": {},
        "seeds": [seed],
        "method_config": SMALL["method_config"],
        "defaults": defaults,
    }


@pytest.mark.slow
def test_every_method_runs_in_bf16_on_the_cpu(in_tmp):
    """Strict: train.on_nonfinite stays ``fail`` and no step may be skipped. (STAL used to get
    a garbage, sometimes inf, weight gradient in STAN's first conv from oneDNN's bf16 kernel:
    bench.engine.padding_taps.)"""
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(bf16_suite(0)))
    invoke("run", "tiny.yaml", "--no-report", "--device", "cpu", "-o", "train.precision=bf16")
    mlf = client()
    runs = mlf.search_runs([experiment_id(mlf, "tiny")])
    assert sorted(r.data.tags["method"] for r in runs) == sorted(METHODS)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["train.precision"] == "bf16"
        assert run.data.params["train.on_nonfinite"] == "fail"
        assert run.data.tags["device"] == "cpu"
        metrics = run.data.metrics
        assert 0 <= metrics["mAP"] <= 100
        assert metrics["train.skipped_steps"] == 0
        assert math.isfinite(metrics["loss/total"])


@pytest.mark.slow
def test_every_method_trains_in_bf16_over_another_seed(in_tmp):
    """Another seed, through the trainer alone (no evaluation): TINY's 3 steps per method,
    each with finite loss terms and gradients (a non-finite one raises)."""
    seed = 1
    suite = bf16_suite(seed, train={"epochs": 1, "precision": "bf16"})
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(suite))
    for cell in load_suite(in_tmp / "tiny.yaml").cells:
        data = cell_data(cell, None)
        method, aux, _ = build_method(cell, data)
        split = data.split
        place(method, Placement(precision="bf16"))
        loader, _ = train_loader(split.train, cell.sections.data, aux, seed)
        trainer = Trainer(method, loader, cell.sections.train, in_tmp / f"{cell.method}.pt")
        assert trainer.cfg.on_nonfinite == "fail"
        trainer.fit()
        assert trainer.guard.skipped == 0
        assert torch.isfinite(
            torch.stack([p.detach().float().sum() for p in method.parameters()])
        ).all()


def test_gpu_check_without_cuda_reports_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the check itself runs instead")
    out = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "no CUDA device" in out.stdout


@pytest.mark.slow
def test_precision_benchmark_prints_both_columns():
    args = ["--methods", "baseline", "--backbone", "resnet10t", "--size", "32x16", "--batch", "4"]
    args += ["--seq-len", "2", "--steps", "1", "--warmup", "0"]
    script = [sys.executable, "benchmarks/precision.py", *args]
    out = subprocess.run(script, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| baseline"))
    fp32, bf16, speedup = (float(v) for v in row.strip("|").split("|")[1:])
    assert fp32 > 0 and bf16 > 0 and speedup == pytest.approx(fp32 / bf16, rel=0.1)


def compile_problem() -> str | None:
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile is not supported on this Python/platform"
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        return "no C compiler for inductor's CPU kernels"
    return None


def first_losses(in_tmp, compiled: bool) -> tuple[Trainer, dict]:
    suite = {**TINY, "seeds": [0], "ablations": {}}
    suite["defaults"] = {**TINY["defaults"], "model": {"backbone": "resnet10t"}}
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(suite))
    (cell,) = load_suite(in_tmp / "tiny.yaml").cells
    data = cell_data(cell, None)
    method, aux, _ = build_method(cell, data)
    split = data.split
    place(method, Placement())
    loader, sampler = train_loader(split.train, cell.sections.data, aux, 0)
    batch = next(iter(loader))
    trainer = Trainer(method, loader, TrainConfig(compile=compiled), in_tmp / "c.pt")
    method.eval()  # no BN updates, no dropout: the two runs see the same function
    return trainer, trainer.step(batch, 0, 0)


@pytest.mark.slow
def test_compile_trains_the_baseline_like_eager(in_tmp):
    problem = compile_problem()
    if problem:
        pytest.skip(problem)
    eager, want = first_losses(in_tmp, compiled=False)
    compiled, got = first_losses(in_tmp, compiled=True)
    assert isinstance(compiled.model, torch._dynamo.eval_frame.OptimizedModule)
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5)
