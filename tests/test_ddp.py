"""DDP on the CPU (gloo, 2 processes): exact global mining, and the real CLI run, kill, resume."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from test_cli_e2e import TINY

from bench.config import TrainConfig
from bench.engine import distributed
from bench.engine.finite import FiniteGuard, NonFiniteError
from bench.engine.tracking import client, experiment_id
from bench.errors import BenchError
from bench.losses import batch_hard_triplet, cross_entropy

FEATS = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def toy_model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4))


def toy_loss(outputs: dict, batch: dict) -> torch.Tensor:
    """A triplet on the embedding + CE on it as logits: both couple the anchors of a batch."""
    return batch_hard_triplet(outputs["feat"], batch["pids"]) + cross_entropy(
        outputs["feat"], batch["pids"]
    )


def _global_mining_rank(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(toy_model())
    local = slice(rank * 4, rank * 4 + 4)  # 2 identities x K=2 per rank
    outputs = {"feat": model(FEATS[local])}
    outputs, batch = distributed.gather_for_loss(outputs, {"pids": PIDS[local]})
    loss = toy_loss(outputs, batch)
    distributed.global_loss(loss).backward()
    with pytest.raises(BenchError, match="train.sync_bn: .* CUDA devices only"):
        distributed.wrap(toy_model(), TrainConfig(sync_bn=True))
    out[rank] = (float(loss), [p.grad.clone() for p in model.parameters()])
    dist.destroy_process_group()


def test_global_mining_gives_the_single_process_loss_and_gradient():
    model = toy_model()
    loss = toy_loss({"feat": model(FEATS)}, {"pids": PIDS})
    loss.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_global_mining_rank, args=(distributed.free_port(), out), nprocs=2)
        results = dict(out)
    for rank in (0, 1):
        value, grads = results[rank]
        assert value == pytest.approx(float(loss.detach()), rel=1e-6)
        for got, want in zip(grads, [p.grad for p in model.parameters()], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def _nan_on_rank0(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    terms = {"ce": torch.tensor(float("nan") if rank == 0 else 1.0), "tri": torch.tensor(0.5)}
    skipper = FiniteGuard(TrainConfig(on_nonfinite="skip_step", max_skipped_steps=3))
    out[rank, "skip"] = (skipper.loss_ok(terms, 0, 0), skipper.skipped)
    try:
        FiniteGuard(TrainConfig()).loss_ok(terms, 0, 1)
        out[rank, "fail"] = "no error"
    except NonFiniteError as err:
        out[rank, "fail"] = str(err)
    dist.destroy_process_group()


def test_a_nan_loss_on_one_rank_stops_or_skips_the_step_on_every_rank():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_nan_on_rank0, args=(distributed.free_port(), out), nprocs=2)
        results = dict(out)
    assert results[0, "skip"] == results[1, "skip"] == (False, 1)
    assert "step 2: non-finite loss (loss terms: ce=nan" in results[0, "fail"]
    assert "step 2: non-finite loss on another rank (loss terms: ce=1," in results[1, "fail"]


def ddp_suite(epochs: int, **train) -> dict:
    suite = {**TINY, "methods": ["baseline"], "ablations": {}, "seeds": [0]}
    suite["defaults"] = {
        **TINY["defaults"],
        "data": {**TINY["defaults"]["data"], "p": 4},
        "train": {"epochs": epochs, **train},
    }
    return suite


def bench_run(*args: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bench.cli", "run", "s.yaml", "--ddp", "2", "--no-report"]
    return subprocess.Popen([*cmd, *args], **popen)


def runs():
    mlf = client()
    return mlf, mlf.search_runs([experiment_id(mlf, "tiny")])


@pytest.mark.slow
def test_ddp_run_through_the_cli_logs_one_finished_run(in_tmp):
    suite = ddp_suite(2, mining="global")
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(suite))
    assert bench_run("--device", "cpu").wait(timeout=600) == 0
    mlf, found = runs()
    assert len(found) == 1 and found[0].info.status == "FINISHED"
    run = found[0]
    assert run.data.tags["world_size"] == "2" and run.data.tags["device"] == "cpu"
    assert 0 <= run.data.metrics["mAP"] <= 100 and "R1" in run.data.metrics
    steps = {m.step for m in mlf.get_metric_history(run.info.run_id, "loss/total")}
    assert steps == {0, 1}
    assert not list(in_tmp.glob(".bench/cells/**/checkpoint.pt"))  # removed once finished


@pytest.mark.slow
def test_ddp_run_resumes_after_the_process_group_is_killed(in_tmp):
    epochs = 6
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(ddp_suite(epochs)))
    first = bench_run(start_new_session=True)
    deadline = time.monotonic() + 600
    while not list(in_tmp.glob(".bench/cells/**/checkpoint.pt")):
        assert first.poll() is None, "the run ended before writing a checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the launcher and both ranks, no clean-up
    first.wait()
    mlf, found = runs()
    assert len(found) == 1 and found[0].info.status == "RUNNING"
    (ckpt,) = in_tmp.glob(".bench/cells/**/checkpoint.pt")
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= killed_at < epochs, "the kill came too late to test resuming"

    assert bench_run().wait(timeout=600) == 0
    mlf, again = runs()
    assert [r.info.run_id for r in again] == [found[0].info.run_id]
    assert again[0].info.status == "FINISHED" and "mAP" in again[0].data.metrics
    history = mlf.get_metric_history(again[0].info.run_id, "loss/total")
    assert {m.step for m in history} == set(range(epochs))
    assert len(history) <= epochs + 1  # resumed: at most the killed epoch was logged twice
