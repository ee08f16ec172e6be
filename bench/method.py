"""The method plugin contract.

A method is an ``nn.Module`` registered with ``@register_method("name")`` and a pydantic
``Config`` holding its paper's defaults and ablation switches. The harness calls:

- ``adapt_config(config, available)`` before training: check the auxiliary inputs it needs
  (``part_masks``, ``keypoints``) against what the dataset provides; fall back or fail clearly;
- ``forward(batch)`` -> outputs, and ``loss(outputs, batch)`` -> named loss terms (all logged;
  their sum is optimised);
- ``embed(clips, aux)`` -> an :data:`Embedding` per clip, ``aggregate`` -> one per tracklet;
- ``distance(query, gallery)`` -> (Q, G) distances (cosine on ``feat`` by default); the
  evaluator calls it on chunks of queries and blocks of the gallery, so entry (i, j) must depend
  on query i and gallery item j only;
- ``search_space(trial)`` -> an override (method fields plus optional ``train``/``data``/
  ``model``/``eval`` patches) for ``bench tune``;
- ``pretrained_parameters()`` (the backbone's, which train at ``train.lr``; every other
  parameter is a new module's, at ``train.lr * train.new_lr_mult``) and ``gates()`` (each
  zero-initialised gate or residual scale, found as a module's ``gate`` attribute; logged per
  epoch as ``diag.gate.<module>``) come with the base class;
- ``probe_names`` and ``probes(batches)`` -> what the method's mechanism does on test clips
  with exact annotations (:class:`~bench.models.probes.ProbeBatch`, synthetic data only),
  logged as ``probe.<name>`` (docs/probes.md); ``attention(clips, aux)`` -> an
  :class:`~bench.models.probes.AttentionView` of one clip for ``bench show attention``.

A batch is a dict: ``clips`` (B, T, C, H, W) float, ``pids`` (B,) long class indices,
``camids`` (B,) long, and when the dataset provides them ``part_masks`` (B, T, H, W) long
(0 = background, 1..4 = head, upper body, lower body, shoes) and ``keypoints`` (B, T, 14, 3)
(x, y in input pixels, visibility).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import nn

from bench.config import DataConfig, MethodConfig, ModelConfig
from bench.eval.blocks import Embedding
from bench.eval.distance import cosine
from bench.models.backbone import Backbone
from bench.models.probes import AttentionView, ProbeBatch

Batch = dict[str, torch.Tensor]
AUX_KEYS = ("part_masks", "keypoints")


class Method(nn.Module):
    """Base class of a re-ID method plugin; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: bump when the method's results change for a reason its code does not show (its code is
    #: fingerprinted already, see bench.suite.fingerprint): cells of the old version then run again
    version: ClassVar[str] = "1"
    #: set when ``embed`` accepts only clips of one length (e.g. RGTR's per-frame relations)
    fixed_clip_len: int | None = None
    #: True when ``embed`` of a clip equals ``aggregate(..., norm=False)`` of the embeddings of
    #: its frames taken as one-frame clips (frame-wise features pooled over time, e.g. the
    #: baseline's mean, STAL's eq. 9): the sequence-length study then embeds every frame once
    #: and pools its random subsets from those embeddings (bench.engine.seqlen)
    frame_separable: ClassVar[bool] = False
    #: the probes the method declares, name -> what it measures (logged as ``probe.<name>``)
    probe_names: ClassVar[dict[str, str]] = {}

    def __init__(
        self, config: MethodConfig, model: ModelConfig, data: DataConfig, num_classes: int
    ):
        super().__init__()
        self.config = config
        self.model_config = model
        self.data_config = data
        self.num_classes = num_classes

    @classmethod
    def adapt_config(
        cls, config: MethodConfig, available: frozenset[str]
    ) -> tuple[MethodConfig, list[str]]:
        """Return the config to train with, and notes on any fallback taken (logged, tagged).

        Raise :class:`bench.errors.BenchError` if the method cannot run without a missing input.
        """
        return config, []

    @classmethod
    def aux_inputs(cls, config: MethodConfig) -> frozenset[str]:
        """The auxiliary inputs this config reads from batches (after ``adapt_config``)."""
        return frozenset()

    def forward(self, batch: Batch) -> dict[str, Any]:
        raise NotImplementedError

    def loss(self, outputs: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The parameters of the timm backbone(s) the method builds on (pretrained when the
        model's weights are); the other parameters belong to modules the method adds."""
        return [
            p
            for module in self.modules()
            if isinstance(module, Backbone)
            for p in module.timm_model.parameters()
        ]

    def diagnostics(self, emb: Embedding) -> dict[str, float]:
        """Figures about the method's test embeddings of N tracklets, logged as metrics
        (``diag.<name>``; none by default)."""
        return {}

    def probes(self, batches: Iterable[ProbeBatch]) -> dict[str, float]:
        """The declared probes over batches of test clips with exact annotations, called in
        eval mode without gradients; a probe this config has no mechanism for, or that the data
        leaves undefined (no nuisance to contrast), is left out."""
        return {}

    def attention(self, clips: torch.Tensor, aux: Batch) -> AttentionView | None:
        """What the method's attention does on one clip (1, T, C, H, W), for drawing; None
        when it has none."""
        return None

    def gates(self) -> dict[str, torch.Tensor]:
        """Every zero-initialised gate or residual scale, by module name: a module's ``gate``."""
        found = ((name, getattr(module, "gate", None)) for name, module in self.named_modules())
        return {name: gate for name, gate in found if isinstance(gate, torch.Tensor)}

    def embed(self, clips: torch.Tensor, aux: Batch) -> Embedding:
        """clips: (B, T, C, H, W) -> embedding of each clip (tensors with leading dim B)."""
        raise NotImplementedError

    def aggregate(self, clips: Embedding, owner: torch.Tensor, count: int, norm: bool) -> Embedding:
        """Average clip embeddings into tracklet embeddings.

        owner: (N,) index of each clip's tracklet in [0, count). With ``norm`` (the RGSA-RGTR
        test protocol) each clip's ``feat`` is L2-normalised before and after averaging.
        """
        out = {}
        for key, value in clips.items():
            v = nn.functional.normalize(value, dim=-1) if norm and key == "feat" else value
            total = v.new_zeros(count, *v.shape[1:]).index_add_(0, owner, v)
            n = torch.bincount(owner, minlength=count).clamp_min(1).to(v.dtype)
            mean = total / n.view(-1, *([1] * (v.dim() - 1)))
            out[key] = nn.functional.normalize(mean, dim=-1) if norm and key == "feat" else mean
        return out

    def distance(self, query: Embedding, gallery: Embedding) -> torch.Tensor:
        """(Q, G) distance matrix between tracklet embeddings; cosine on ``feat`` by default."""
        return cosine(query["feat"], gallery["feat"])

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """An Optuna search space: return an override dict built from ``trial.suggest_*``."""
        return {
            "train": {
                "lr": trial.suggest_float("lr", 1e-4, 1e-3, log=True),
                "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True),
            }
        }
