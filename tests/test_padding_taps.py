"""Convs with kernel taps that see only padding run in float32 under CPU bf16 autocast."""

import copy
import itertools

import torch
from torch import nn

from bench.engine.device import Placement, place
from bench.engine.padding_taps import guard_padded_convs, has_padding_only_taps


def zero_grad_taps(conv: nn.modules.conv._ConvNd, spatial: tuple[int, ...]) -> bool:
    """Ground truth in float64: with all-ones input and output gradient, a tap's weight
    gradient counts the real inputs it meets, so it is 0 exactly for a padding-only tap."""
    conv = copy.deepcopy(conv).double()
    x = torch.ones(1, conv.in_channels, *spatial, dtype=torch.float64)
    y = conv(x)
    y.backward(torch.ones_like(y))
    return bool((conv.weight.grad[0, 0] == 0).any())


CONFIGS = [
    (nn.Conv2d, k, s, p, d)
    for k, s, d in itertools.product((1, 3, 5, 7), (1, 2), (1, 2))
    for p in range(0, k, 2 if k > 3 else 1)
] + [
    (nn.ConvTranspose2d, k, s, p, 1)
    for k, s in itertools.product((2, 3, 4), (1, 2))
    for p in range(k)
]


def test_padding_only_taps_match_a_float64_gradient():
    checked = 0
    for (kind, k, s, p, d), n in itertools.product(CONFIGS, (1, 2, 3, 8)):
        conv = kind(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
        spatial = (n, 9 - n)
        try:
            truth = zero_grad_taps(conv, spatial)
        except RuntimeError:  # the output would be empty
            continue
        assert has_padding_only_taps(conv, spatial) == truth, (kind, k, s, p, d, spatial)
        checked += 1
    assert checked > 140  # and every one agrees


def test_stan_sized_conv_is_flagged_only_on_tiny_maps():
    stan = nn.Conv2d(256, 64, 7, padding=3)  # STAL's STAN, first conv
    assert has_padding_only_taps(stan, (2, 1))  # a 32 x 16 clip at stride 16 (TINY)
    assert not has_padding_only_taps(stan, (8, 4))  # 128 x 64
    assert not has_padding_only_taps(stan, (16, 8))  # 256 x 128, the papers' size
    assert not has_padding_only_taps(nn.Conv2d(8, 8, 3, padding="same"), (2, 2))
    assert has_padding_only_taps(nn.Conv2d(8, 8, 3, padding="same"), (1, 1))
    assert not has_padding_only_taps(nn.Conv2d(8, 8, 7, padding=3, padding_mode="reflect"), (4, 4))


def stan_conv_grads(conv: nn.Conv2d, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    conv.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = conv(x)
    y.float().sum().backward()  # an output gradient of ones, exact in bf16
    return conv.weight.grad


def test_bf16_weight_gradient_of_stans_conv_is_exact_at_padding_only_taps():
    """The former failure: STAN's 7x7 conv (256 -> 64) on the 2 x 1 low-level map of a TINY
    clip, bf16 autocast. Unguarded, oneDNN 3.12's jit_bf16:avx512_core_bf16 backward-weights
    left the 46 padding-only taps of its gradient unwritten (freed memory: old values, 1e21,
    inf; nonzero in 50 of 50 tries, different from run to run), which made STAL diverge now
    and then. Guarded, the gradient is float32's, bit for bit: 0 at those taps."""
    torch.manual_seed(0)
    conv = guard_padded_convs(nn.Conv2d(256, 64, 7, padding=3, bias=False))
    x = torch.randn(8, 256, 2, 1)
    sees_data = torch.zeros(7, 7, dtype=torch.bool)
    sees_data[2:5, 3] = True  # rows 2-4 meet the 2 rows, column 3 the 1 column
    want = stan_conv_grads(conv, x, bf16=False).clone()
    assert bool((want[..., ~sees_data] == 0).all())
    for _ in range(10):
        junk = torch.full((2 * conv.weight.numel(),), float("inf"), dtype=torch.bfloat16)
        del junk  # hand the allocator inf-filled memory, as the training step did
        got = stan_conv_grads(conv, x, bf16=True)
        assert bool(torch.isfinite(got).all())
        assert bool((got[..., ~sees_data] == 0).all())
        assert torch.equal(got, want)


def test_guard_keeps_bf16_where_taps_see_data_and_leaves_fp32_alone():
    torch.manual_seed(0)
    plain = nn.Conv2d(16, 8, 3, padding=1)
    guarded = guard_padded_convs(copy.deepcopy(plain))
    for spatial in ((1, 1), (6, 4)):
        x = torch.randn(2, 16, *spatial)
        assert torch.equal(guarded(x), plain(x))  # fp32: the same function, bit for bit
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, ref = guarded(x), plain(x)
        assert y.dtype == ref.dtype == torch.bfloat16  # the autocast dtype either way
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(guarded(x), plain(x))  # taps all see data: autocast's bf16 conv


def test_place_guards_every_conv_once():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 4, 4, 2, 1))
    place(net, Placement(precision="bf16"))
    forwards = [m.forward for m in net]
    place(net, Placement(precision="bf16"))
    assert [m.forward for m in net] == forwards  # not wrapped twice
    clone = copy.deepcopy(net)
    assert clone[0].forward.args[0] is clone[0]  # a copy's forward runs the copy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert clone(torch.randn(1, 3, 1, 1)).dtype == torch.bfloat16
