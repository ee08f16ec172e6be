"""``bench export``: a trained method's embedding model as an ONNX file (or TorchScript).

The exported model is the method's ``embed`` and nothing else: a batch of clips in, the
embedding of each clip out. Its inputs: ``clips``, float32 (B, T, 3, H, W), frames normalised
with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) as bench's loaders
give them, T and H x W those the method was tested with (its test clip length, the input size),
B free; and ``keypoints`` (B, T, 14, 3) for a STAL whose part boxes come from joints. Its
outputs are the embedding's tensors by name, sorted: ``feat`` (B, D) for the baseline, IAUnet
and RGSA-RGTR (compared by cosine distance); ``a`` (B, 6), ``f`` (B, 6, Dl), ``g`` (B, Dg) for
STAL, whose distance is eq. 8 of the paper over them (``methods/stal.py``: ``STAL.distance``;
docs/api.md). A tracklet's embedding is the method's ``aggregate`` of its clips' (the mean of
``feat``; STAL: ``a``-weighted ``f``). The ONNX file's metadata (``bench``: JSON) says all of
this for the file at hand.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from bench.config import Defaults
from bench.engine.cost import clip_length, dummy_batch
from bench.files.atomic import atomic_path
from bench.method import Method

FORMATS = ("onnx", "torchscript")
#: auxiliary inputs an embedding can read (part masks only ever feed training losses)
EMBED_AUX = ("keypoints",)
OPSET = 18


class EmbeddingModel(nn.Module):
    """``method.embed`` as a plain module: clips (and keypoints) -> the embedding's tensors in
    the order of ``names``."""

    def __init__(self, method: Method, names: list[str], keypoints: bool):
        super().__init__()
        self.method, self.names, self.keypoints = method, names, keypoints

    def forward(self, clips: torch.Tensor, keypoints: torch.Tensor | None = None):
        aux = {"keypoints": keypoints} if self.keypoints else {}
        emb = self.method.embed(clips, aux)
        return tuple(emb[k] for k in self.names)


def example_inputs(method: Method, sections: Defaults, aux: frozenset[str], batch: int = 2):
    """(clips, keypoints or None) of the exported shapes, on the method's device."""
    t = clip_length(sections, method.fixed_clip_len)
    data = sections.data
    device = next(method.parameters()).device
    example = dummy_batch(batch, t, data.height, data.width)
    keypoints = example["keypoints"].to(device) if "keypoints" in aux else None
    return example["clips"].to(device), keypoints


def embedding_model(
    method: Method, sections: Defaults, aux: frozenset[str]
) -> tuple[EmbeddingModel, tuple]:
    """The module to export and its example inputs (``aux``: the auxiliary inputs the method
    was tested with; only keypoints reach an embedding)."""
    method.eval()
    clips, keypoints = example_inputs(method, sections, frozenset(aux) & set(EMBED_AUX))
    with torch.no_grad():
        names = sorted(
            method.embed(clips, {"keypoints": keypoints} if keypoints is not None else {})
        )
    model = EmbeddingModel(method, names, keypoints is not None).eval()
    return model, (clips,) if keypoints is None else (clips, keypoints)


def about(model: EmbeddingModel, inputs: tuple, labels: dict) -> dict:
    """What the exported file is: ``labels`` (method, variant, the run that trained it), the
    method's config, its inputs and outputs, and how to compare them."""
    method = model.method
    return {
        **labels,
        "config": method.config.model_dump(mode="json"),
        "inputs": {
            name: list(x.shape[1:]) for name, x in zip(("clips", "keypoints"), inputs, strict=False)
        },
        "outputs": model.names,
        "normalise": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "distance": f"{type(method).__module__}.{type(method).__qualname__}.distance",
    }


def export_onnx(model: EmbeddingModel, inputs: tuple, path: Path, info: dict) -> Path:
    """The model as ONNX (torch.onnx's exporter, batch dimension free), ``info`` as metadata."""
    import onnx

    names = ["clips", "keypoints"][: len(inputs)]
    batch = torch.export.Dim("batch", min=1)
    shapes = ({0: batch}, *([{0: batch}] if len(inputs) > 1 else []))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            inputs,
            input_names=names,
            output_names=model.names,
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"bench": json.dumps(info, sort_keys=True)})
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def export_torchscript(model: EmbeddingModel, inputs: tuple, path: Path, info: dict) -> Path:
    """The model traced to TorchScript (``torch.jit.load`` reads it), ``info`` as an extra file."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, inputs, check_trace=False)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files={"bench.json": json.dumps(info)})
    return path


def export(
    method: Method, sections: Defaults, aux: frozenset[str], fmt: str, out: Path, labels: dict
) -> Path:
    """Write the method's embedding model to ``out`` in ``fmt`` (:data:`FORMATS`)."""
    model, inputs = embedding_model(method, sections, aux)
    info = about(model, inputs, labels)
    writer = export_onnx if fmt == "onnx" else export_torchscript
    return writer(model, inputs, out, info)
