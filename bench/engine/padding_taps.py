"""Convolutions with kernel taps that see only zero padding run in float32 under CPU autocast.

When a kernel is large for its input (STAN's 7x7 conv on the 2 x 1 map of a 32 x 16 clip at
stride 16), some taps meet nothing but padding at every output position; their weight gradient
is exactly 0. oneDNN's bf16 backward-weights kernel (``jit_bf16:avx512_core_bf16``, oneDNN
3.12 in torch 2.14) leaves those entries unwritten: they hold whatever the allocator handed
back (old gradients, 1e21, inf), differ from run to run, and made bf16 training diverge
sporadically. :func:`guard_padded_convs` runs such a conv in float32 (an fp32 island, as AMP
does for ops that are unsafe in low precision), and every other conv as autocast decides.
fp32 runs never take the float32 path: nothing changes there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

GUARDED = "_bench_padding_taps_guard"


@functools.lru_cache(maxsize=4096)
def _taps_see_data(
    n: int, k: int, stride: int, pad: int, dilation: int, extra: int, transposed: bool
) -> bool:
    """Along one axis of size ``n``: does every tap of the kernel meet real data somewhere?

    A conv's tap i reads input ``j*stride - pad + i*dilation`` for each output j; a transposed
    conv's tap i writes output ``j*stride - pad + i*dilation`` for each input j, and the
    outputs outside the cropped range (``extra`` = its output padding) are the padding.
    """
    if transposed:
        steps, size = n, (n - 1) * stride - 2 * pad + dilation * (k - 1) + extra + 1
    else:
        steps, size = (n + 2 * pad - dilation * (k - 1) - 1) // stride + 1, n
    return all(
        any(0 <= j * stride - pad + i * dilation < size for j in range(steps)) for i in range(k)
    )


def has_padding_only_taps(conv: nn.modules.conv._ConvNd, spatial: tuple[int, ...]) -> bool:
    """True if a tap of ``conv``'s kernel sees only zero padding on an input of ``spatial``
    size (H, W) (or (L,) / (D, H, W)). Non-zero padding modes pad explicitly: never."""
    if conv.padding_mode != "zeros":
        return False
    padding = conv.padding
    if isinstance(padding, str):  # 'valid' or 'same' (the extra pad goes to the right)
        same = padding == "same"
        padding = [
            d * (k - 1) // 2 * same for d, k in zip(conv.dilation, conv.kernel_size, strict=True)
        ]
    axes = zip(
        spatial,
        conv.kernel_size,
        conv.stride,
        padding,
        conv.dilation,
        conv.output_padding,
        strict=True,
    )
    return not all(_taps_see_data(*axis, conv.transposed) for axis in axes)


def _cpu_autocast_dtype() -> torch.dtype | None:
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None


def _guarded_forward(conv: nn.modules.conv._ConvNd, forward: Callable, x: torch.Tensor, *args):
    """``conv``'s forward; in float32 (output back in the autocast dtype) where CPU autocast is
    on and a tap of the kernel sees only padding."""
    dtype = _cpu_autocast_dtype()
    spatial = tuple(x.shape[-len(conv.kernel_size) :])
    if dtype is None or x.device.type != "cpu" or not has_padding_only_taps(conv, spatial):
        return forward(x, *args)
    with torch.autocast("cpu", enabled=False):
        return forward(x.float(), *args).to(dtype)


def guard_padded_convs(model: nn.Module) -> nn.Module:
    """Route every conv (and transposed conv) of ``model`` through :func:`_guarded_forward`;
    idempotent. Returns ``model``."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd) and not getattr(module, GUARDED, False):
            module.forward = functools.partial(_guarded_forward, module, module.forward)
            setattr(module, GUARDED, True)
    return model
