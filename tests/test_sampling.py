"""P x K sampler, clip frame selection and clip-level augmentation."""

import random
from collections import Counter

import torch
import torch.nn.functional as F

from bench.data.sampling import PKSampler, clip_indices, eval_clips
from bench.data.transforms import augment_clip, flip_clip, shift


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


def test_crop_off_leaves_the_augmentation_and_its_random_stream_as_before():
    clip = _clip()
    for seed in range(10):
        rngs = [random.Random(seed) for _ in range(3)]
        old = augment_clip(clip, 0.5, 1.0, rngs[0])
        for rng, kwargs in zip(
            rngs[1:], [{"crop": 0.0}, {"crop": 0.0, "crop_pad": 4}], strict=True
        ):
            new = augment_clip(clip, 0.5, 1.0, rng, **kwargs)
            assert all(torch.equal(old[k], new[k]) for k in old)
        assert rngs[0].random() == rngs[1].random() == rngs[2].random()


def test_shift_is_pad_then_crop():
    x = torch.randn(2, 3, 8, 6)
    pad = 3
    padded = F.pad(x, (pad, pad, pad, pad))
    for dy, dx in [(0, 0), (2, -3), (-3, 1), (3, 3)]:
        y0, x0 = pad - dy, pad - dx
        assert torch.equal(shift(x, dy, dx, 0.0), padded[..., y0 : y0 + 8, x0 : x0 + 6])


def test_crop_is_one_box_for_every_frame_mask_and_keypoint():
    clip, pad = _clip(), 2
    clip["keypoints"][:, :, 1] = 4.0
    clip["keypoints"][:, :, 2] = 1.0
    shifts = set()
    for seed in range(30):
        out = augment_clip(clip, 0.0, 0.0, random.Random(seed), crop=1.0, crop_pad=pad)
        found = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(out["clips"], shift(clip["clips"], dy, dx, 0.0))
        ]
        assert len(found) == 1  # one box, and the same for all T frames
        dy, dx = found[0]
        shifts.add(found[0])
        assert torch.equal(out["part_masks"], shift(clip["part_masks"], dy, dx, 0))
        kp = out["keypoints"]
        torch.testing.assert_close(kp[..., 0], clip["keypoints"][..., 0] + dx)
        torch.testing.assert_close(kp[..., 1], clip["keypoints"][..., 1] + dy)
        gone = (kp[..., 0] < 0) | (kp[..., 0] > 7)  # x = 1 or 6 shifted out of the 8 columns
        assert torch.equal(kp[..., 2] == 0, gone)
    assert len(shifts) > 5  # the box is drawn, not fixed


def test_crop_probability_is_per_clip():
    clip = _clip()
    cropped = [
        not torch.equal(
            augment_clip(clip, 0.0, 0.0, random.Random(s), crop=0.5, crop_pad=2)["clips"],
            clip["clips"],
        )
        for s in range(40)
    ]
    assert 5 < sum(cropped) < 35
