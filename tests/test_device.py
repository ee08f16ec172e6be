"""Devices, precision, channels-last and the distributed P x K sampler, on the CPU."""

import pytest
import torch
import yaml
from test_engine import SUITE

from bench.config import RuntimeConfig
from bench.data.loader import SeededPKSampler, loader_workers, train_loader
from bench.data.sampling import PKSampler
from bench.engine import checkpoint
from bench.engine.assemble import build_method, cell_data
from bench.engine.device import Placement, autocast, place, resolve_device, to_device
from bench.engine.evaluator import extract
from bench.engine.trainer import Trainer
from bench.errors import BenchError, ConfigError
from bench.suite.load import load_suite


def test_device_resolution_and_clear_errors():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="runtime.device 'cuda:1': CUDA is not available"):
            resolve_device("cuda:1")
    with pytest.raises(ValueError, match="pattern"):
        RuntimeConfig(device="gpu0")


def test_worker_default_keeps_the_cpu_at_zero():
    assert loader_workers(None, torch.device("cpu")) == 0
    assert loader_workers(None, None) == 0
    assert 1 <= loader_workers(None, torch.device("cuda")) <= 8
    assert loader_workers(3, torch.device("cpu")) == 3


def test_every_batch_tensor_is_moved():
    batch = {k: torch.zeros(2, 3) for k in ("clips", "pids", "camids", "part_masks", "keypoints")}
    moved = to_device({**batch, "name": "x"}, torch.device("meta"))
    assert all(moved[k].device.type == "meta" for k in batch) and moved["name"] == "x"


def write_suite(tmp, **train):
    suite = {**SUITE, "defaults": {**SUITE["defaults"], "train": {**SUITE["defaults"]["train"]}}}
    suite["defaults"]["train"].update(train)
    (tmp / "s.yaml").write_text(yaml.safe_dump(suite))
    return tmp / "s.yaml"


def test_device_is_outside_the_hash_precision_and_memory_format_inside(in_tmp):
    path = write_suite(in_tmp)
    (base,) = load_suite(path).cells
    (on_cpu,) = load_suite(path, ["defaults.runtime.device=cpu"]).cells
    assert on_cpu.sections.runtime.device == "cpu"
    assert (on_cpu.config_hash, on_cpu.train_hash) == (base.config_hash, base.train_hash)
    for override in ("defaults.train.precision=bf16", "defaults.train.channels_last=true"):
        (other,) = load_suite(path, [override]).cells
        assert other.config_hash != base.config_hash and other.train_hash != base.train_hash
    with pytest.raises(ConfigError, match="runtime.device"):
        load_suite(path, ["defaults.runtime.device=tpu"])


@pytest.mark.parametrize("world", [2, 4])
def test_distributed_sampler_splits_each_batch_by_identity(world):
    pids = [i // 3 for i in range(3 * 12)]  # 12 identities, 3 tracklets each
    single = list(SeededPKSampler(PKSampler(pids, 4, 2, seed=5)))
    ranks = [list(SeededPKSampler(PKSampler(pids, 4, 2, seed=5), r, world)) for r in range(world)]
    assert {len(r) for r in ranks} == {len(single) // world}  # same steps on every rank
    per = 4 * 2 // world
    for b in range(len(single) // 8):
        slices = [r[b * per : (b + 1) * per] for r in ranks]
        assert sum(slices, []) == single[b * 8 : (b + 1) * 8]  # together: one process's batch
        ids = [{pids[i] for i, _ in s} for s in slices]
        assert sum(len(i) for i in ids) == len(set().union(*ids)) == 4  # distinct identities


def test_identities_that_do_not_split_over_the_ranks_are_refused():
    with pytest.raises(BenchError, match=r"data.p=4 .* 3 processes"):
        SeededPKSampler(PKSampler(list(range(8)), 4, 2), 0, 3)


def trained(in_tmp, precision, channels_last=False, epochs=1):
    path = write_suite(in_tmp, precision=precision, channels_last=channels_last, epochs=epochs)
    (cell,) = load_suite(path).cells
    data = cell_data(cell, None)
    method, aux, _ = build_method(cell, data)
    split = data.split
    place(method, Placement(torch.device("cpu"), precision, channels_last))
    loader, _ = train_loader(split.train, cell.sections.data, aux, 0)
    ckpt = in_tmp / "ck.pt"
    trainer = Trainer(method, loader, cell.sections.train, ckpt)
    return cell, split, method, trainer, ckpt


def test_bf16_autocast_and_channels_last_reach_the_backbone(in_tmp):
    cell, split, method, trainer, ckpt = trained(in_tmp, "bf16", channels_last=True)
    seen = []
    stem = method.backbone.stages[0]
    stem.register_forward_hook(lambda m, inp, out: seen.append((inp[0], out.dtype)))
    before = [p.detach().clone() for p in method.parameters()]
    logs = []
    trainer.fit(lambda epoch, values: logs.append(values))
    frames, dtype = seen[0]
    assert dtype == torch.bfloat16
    assert frames.is_contiguous(memory_format=torch.channels_last) and frames.dim() == 4
    assert all(torch.isfinite(torch.tensor(v)) for v in logs[0].values())
    assert any(not torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))
    seen.clear()
    emb = extract(method, split.query, cell.sections.data, cell.sections.eval, frozenset())
    assert seen[0][1] == torch.bfloat16 and emb["feat"].dtype == torch.float32


def test_fp16_uses_a_grad_scaler_whose_state_is_checkpointed(in_tmp):
    try:
        with autocast(Placement(torch.device("cpu"), "fp16")):
            torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError as exc:
        pytest.skip(f"this CPU build has no fp16 autocast: {exc}")
    _, _, _, trainer, ckpt = trained(in_tmp, "fp16")
    assert trainer.scaler.is_enabled()
    trainer.fit()
    state = checkpoint.load(ckpt)
    assert state["scaler"]["scale"] == trainer.scaler.get_scale() > 0
    state["scaler"]["scale"] = 128.0
    checkpoint.save(ckpt, state)
    *_, again, _ = trained(in_tmp, "fp16", epochs=2)
    assert again.resume() == 1 and again.scaler.get_scale() == 128.0
