"""P x K sampler, clip frame selection and clip-level augmentation."""

import random
from collections import Counter

import torch

from bench.data.sampling import PKSampler, clip_indices, eval_clips
from bench.data.transforms import augment_clip, flip_clip


def test_pk_batches_hold_p_identities_with_k_tracklets_each():
    pids = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4]
    sampler = PKSampler(pids, p=2, k=3, seed=1)
    batches = sampler.batches()
    assert len(batches) == 5 // 2
    seen = set()
    for batch in batches:
        counts = Counter(pids[i] for i in batch)
        assert len(counts) == 2 and set(counts.values()) == {3}
        seen |= set(counts)
    assert len(seen) == 4  # each identity at most once per epoch
    assert list(sampler) == [i for b in batches for i in b]


def test_pk_sampler_is_seeded_and_changes_with_epoch():
    pids = [i // 3 for i in range(30)]
    a, b = PKSampler(pids, 4, 2, seed=3), PKSampler(pids, 4, 2, seed=3)
    assert a.batches() == b.batches()
    b.set_epoch(1)
    assert a.batches() != b.batches()


def test_identity_with_fewer_than_k_tracklets_is_sampled_with_replacement():
    sampler = PKSampler([0, 1, 1, 1], p=2, k=3, seed=0)
    (batch,) = sampler.batches()
    assert batch.count(0) == 3


def test_clip_indices_are_ordered_and_in_range():
    rng = random.Random(0)
    for mode in ("random", "stride", "chunks"):
        for n in (1, 3, 8, 40):
            idx = clip_indices(n, 4, mode, 8, rng)
            assert len(idx) == 4 and idx == sorted(idx)
            assert all(0 <= i < n for i in idx)
    assert len(set(clip_indices(40, 4, "random", 8, rng))) == 4
    stride = clip_indices(40, 4, "stride", 8, rng)
    assert {b - a for a, b in zip(stride, stride[1:], strict=False)} == {8}
    chunks = clip_indices(40, 4, "chunks", 8, rng)
    assert [c // 10 for c in chunks] == [0, 1, 2, 3]


def test_eval_clips_cover_every_frame():
    clips = eval_clips(10, 4, 2)
    assert set(i for c in clips for i in c) == set(range(10))
    assert all(len(c) == 4 for c in clips) and clips[-1][-1] == 9
    assert eval_clips(3, 4, 4) == [[0, 1, 2, 0]]


def _clip():
    torch.manual_seed(0)
    kp = torch.zeros(3, 14, 3)
    kp[:, 2, 0] = 1.0  # right shoulder at x=1
    kp[:, 5, 0] = 6.0  # left shoulder at x=6
    return {
        "clips": torch.randn(3, 3, 8, 8),
        "part_masks": torch.randint(0, 5, (3, 8, 8)),
        "keypoints": kp,
    }


def test_flip_mirrors_frames_masks_and_swaps_left_right_joints():
    clip = _clip()
    out = flip_clip(clip)
    assert torch.equal(out["clips"], clip["clips"].flip(-1))
    assert torch.equal(out["part_masks"], clip["part_masks"].flip(-1))
    # the joint at x=6 (left shoulder) lands at x=1 and is now the right shoulder's slot
    assert torch.all(out["keypoints"][:, 2, 0] == 1.0)
    assert torch.all(out["keypoints"][:, 5, 0] == 6.0)


def test_augmentation_is_drawn_once_per_clip():
    clip = _clip()
    for seed in range(20):
        out = augment_clip(clip, flip=0.5, erasing=1.0, rng=random.Random(seed))
        changed = (out["clips"] != clip["clips"]) & (out["clips"] != clip["clips"].flip(-1))
        masks = [changed[t].any(0) for t in range(3)]
        # the same pixels are erased in every frame of the clip
        assert torch.equal(masks[0], masks[1]) and torch.equal(masks[1], masks[2])
        flipped = [
            torch.equal(out["part_masks"][t], clip["part_masks"][t].flip(-1)) for t in range(3)
        ]
        assert len(set(flipped)) == 1
