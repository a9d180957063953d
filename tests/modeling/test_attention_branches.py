import logging

import pytest
import torch

from daaf.config import get_cfg
from daaf.modeling import build_model, count_flops, model_input_fields, strip_branches
from daaf.modeling.attention import keypoint_heatmaps, part_image_targets, resolve_keypoint_groups
from daaf.utils.checkpoint import DAAFCheckpointer
from daaf.utils.errors import ConfigError

from conftest import make_batch


def daaf_cfg(*branches, **overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.DEPTH", "18", "MODEL.BACKBONE.PRETRAIN", "False"])
    cfg.MODEL.DAAF.BRANCHES = list(branches)
    for key, value in overrides.items():
        cfg.merge_from_list([key.replace("__", "."), str(value)])
    return cfg


def fake_batch(b=4, h=64, w=32, labelled=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    keypoints = torch.rand(b, 17, 3, generator=g) * torch.tensor([w, h, 1.0])
    keypoints[..., 2] = 2
    masks = torch.zeros(b, h, w, dtype=torch.uint8)
    masks[:, h // 8 : -h // 8, w // 4 : -w // 4] = 1
    return make_batch(
        torch.randint(0, 255, (b, 3, h, w), dtype=torch.uint8, generator=g),
        torch.arange(b // 2).repeat_interleave(2),
        masks=masks,
        keypoints=keypoints,
        has_label=torch.ones(b, dtype=torch.bool) if labelled is None else torch.tensor(labelled),
    )


def backbone_features(model, batch):
    return model.backbone(model.preprocess_image(batch))


@pytest.mark.parametrize("last_stride,expected", [(1, (64, 32)), (2, (32, 16))])
def test_branch_outputs_are_input_size_for_bot_and_half_for_trinet(last_stride, expected):
    model = build_model(daaf_cfg("HAB", "PAB", MODEL__BACKBONE__LAST_STRIDE=last_stride))
    features = backbone_features(model, fake_batch())
    assert model.branches["HAB"].predict(features).shape == (4, 1, *expected)
    pab = model.branches["PAB"].predict(features)
    assert [p.shape for p in pab] == [(4, len(g), *expected) for g in resolve_keypoint_groups("coco6")]


def test_pab_groups_use_disjoint_channels_and_one_shared_decoder():
    model = build_model(daaf_cfg("PAB"))
    pab = model.branches["PAB"]
    slices = [pab.group_slice(g) for g in range(6)]
    assert pab.group_channels == 512 // 6 == 85
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:])) and slices[-1].stop == 510  # 2 channels unused
    assert len(pab.decoders) == 1 and len(pab.predictors) == 6
    # changing a group's own channels changes only that group's prediction
    features = backbone_features(model, fake_batch())
    model.eval()
    before = pab.predict(features)
    features["res5"][:, slices[2]] += 1.0
    after = pab.predict(features)
    changed = [not torch.allclose(a, b) for a, b in zip(before, after)]
    assert changed == [False, False, True, False, False, False]
    features["res5"][:, 510:] += 5.0  # leftover channels are never read
    assert all(torch.equal(a, b) for a, b in zip(after, pab.predict(features)))

    independent = build_model(daaf_cfg("PAB", MODEL__DAAF__PAB__SHARED_DECODER=False)).branches["PAB"]
    assert len(independent.decoders) == 6
    w0, w1 = (d.layers[0].weight for d in list(independent.decoders)[:2])
    assert w0.data_ptr() != w1.data_ptr() and not torch.equal(w0, w1)


def test_group_scheme_decides_which_heatmaps_each_group_predicts():
    batch = fake_batch()
    forward = build_model(daaf_cfg("PAB", MODEL__DAAF__PAB__GROUP_LIST="[[0, 1], [15, 16]]")).branches["PAB"]
    swapped = build_model(daaf_cfg("PAB", MODEL__DAAF__PAB__GROUP_LIST="[[15, 16], [0, 1]]")).branches["PAB"]
    heat = keypoint_heatmaps(batch.person_labels.keypoints, (64, 32), (32, 16), 2.0)
    t_forward, t_swapped = forward.targets(batch, (32, 16)), swapped.targets(batch, (32, 16))
    assert torch.equal(t_forward[0], heat[:, [0, 1]]) and torch.equal(t_forward[1], heat[:, [15, 16]])
    assert torch.equal(t_swapped[0], t_forward[1]) and torch.equal(t_swapped[1], t_forward[0])


def test_heatmaps_peak_at_keypoints_and_invisible_ones_are_zero():
    keypoints = torch.tensor([[[11.0, 21.0, 2.0], [3.0, 4.0, 0.0]]])  # input pixels; output = / 2
    heat = keypoint_heatmaps(keypoints, (64, 32), (32, 16), sigma=1.5)
    assert heat.shape == (1, 2, 32, 16)
    peak = torch.nonzero(heat[0, 0] == heat[0, 0].max())[0].tolist()
    assert peak == [10, 5] and heat[0, 0].max() == pytest.approx(1.0)  # (5.5, 10.5): centre of pixel (5, 10)
    assert heat[0, 1].abs().sum() == 0


def test_part_image_targets_are_horizontal_stripes():
    images = torch.full((1, 3, 60, 30), 255, dtype=torch.uint8)
    stripes = part_image_targets(images, 6, (60, 30))
    assert stripes.shape == (1, 6, 3, 60, 30)
    for g in range(6):
        rows = stripes[0, g, 0].sum(1) > 0
        assert torch.nonzero(rows).flatten().tolist() == list(range(10 * g, 10 * g + 10))
    assert torch.allclose(stripes.sum(1), torch.ones(1, 3, 60, 30))


def test_hab_loss_is_sum_over_pixels_mean_over_labelled_crops():
    model = build_model(daaf_cfg("HAB", MODEL__DAAF__HAB__LOSS_WEIGHT=0.5))
    hab = model.branches["HAB"]
    batch = fake_batch(labelled=[True, False, True, True])
    features = backbone_features(model, batch)
    pred = hab.predict(features)
    target = torch.nn.functional.interpolate(batch.person_labels.masks[:, None].float(), size=pred.shape[-2:], mode="nearest")
    keep = torch.tensor([0, 2, 3])
    expected = 0.5 * (pred[keep] - target[keep]).pow(2).sum() / 3
    torch.testing.assert_close(hab(features, batch)["loss_hab"], expected)


def test_pab_loss_is_eq4():
    model = build_model(daaf_cfg("PAB", MODEL__DAAF__PAB__GROUPS="coco4", MODEL__DAAF__PAB__SIGMA=1.0))
    pab = model.branches["PAB"]
    batch = fake_batch(labelled=[True, True, False, True])
    features = backbone_features(model, batch)
    pred = torch.cat(pab.predict(features), 1)
    order = [k for g in resolve_keypoint_groups("coco4") for k in g]
    target = keypoint_heatmaps(batch.person_labels.keypoints, (64, 32), pred.shape[-2:], 1.0 * pred.shape[-2] / 64)[
        :, order
    ]  # SIGMA: input px
    keep = torch.tensor([0, 1, 3])
    expected = 0.003 * (pred[keep] - target[keep]).pow(2).sum() / (3 * 17)
    torch.testing.assert_close(pab(features, batch)["loss_pab"], expected)
    mean_pab = build_model(
        daaf_cfg("PAB", MODEL__DAAF__PAB__GROUPS="coco4", MODEL__DAAF__PAB__LOSS_REDUCTION="mean", MODEL__DAAF__PAB__SIGMA=1.0)
    ).branches["PAB"]
    mean_pab.load_state_dict(pab.state_dict())
    torch.testing.assert_close(mean_pab(features, batch)["loss_pab"], 0.003 * (pred[keep] - target[keep]).pow(2).mean())


@pytest.mark.parametrize("last_stride", [1, 2])
def test_pab_sigma_is_in_input_pixels_whatever_the_output_stride(last_stride):
    model = build_model(daaf_cfg("PAB", MODEL__BACKBONE__LAST_STRIDE=last_stride, MODEL__DAAF__PAB__SIGMA=4.0))
    pab = model.branches["PAB"]
    batch = fake_batch()
    batch.person_labels.keypoints[..., :2] = torch.tensor([16.0, 32.0])  # every keypoint at the crop's centre
    size = pab.predict(backbone_features(model, batch))[0].shape[-2:]
    heatmap = pab.targets(batch, size)[0][0, 0]  # (h, w) of one keypoint
    scale = 64 / size[0]  # input pixels per output pixel: 1 (BoT-like) or 2 (TriNet-like)
    xs = (torch.arange(size[1]) + 0.5) * scale  # pixel centres in input pixels
    r = int(32 / scale)  # the row through the centre, its centre at y = (r + 0.5) * scale
    expected = torch.exp(-((xs - 16.0) ** 2 + ((r + 0.5) * scale - 32.0) ** 2) / (2 * 4.0**2))
    torch.testing.assert_close(heatmap[r], expected, rtol=1e-4, atol=1e-5)


def test_unlabelled_batch_gives_zero_branch_losses_and_finite_gradients():
    model = build_model(daaf_cfg("HAB", "PAB"))
    losses = model(fake_batch(labelled=[False] * 4))
    assert losses["loss_hab"].item() == 0 and losses["loss_pab"].item() == 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_hab_copy_encoder_starts_from_the_backbone_weights_and_shared_has_none():
    model = build_model(daaf_cfg("HAB"))
    hab = model.branches["HAB"]
    assert hab.source == "res2" and list(dict(hab.encoder.named_children())) == ["res3", "res4", "res5"]
    assert torch.equal(hab.encoder.res3[0].conv1.weight, model.backbone.res3[0].conv1.weight)
    assert hab.encoder.res3[0].conv1.weight.data_ptr() != model.backbone.res3[0].conv1.weight.data_ptr()
    shared = build_model(daaf_cfg("HAB", MODEL__DAAF__HAB__ENCODER="shared")).branches["HAB"]
    assert shared.encoder is None and shared.source == "res5"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"MODEL__DAAF__PAB__GROUP_LIST": "[[0, 1], [1, 2]]"}, "appear in more than one group"),
        ({"MODEL__DAAF__PAB__GROUP_LIST": "[[0, 17]]"}, "0..16"),
        ({"MODEL__DAAF__PAB__GROUPS": "coco5"}, "unknown scheme 'coco5'"),
        ({"MODEL__DAAF__HAB__ENCODER": "clone"}, "expected 'copy' or 'shared'"),
        ({"MODEL__DAAF__DECODER__KERNEL_SIZE": 1}, "cannot upsample exactly 2x"),
        ({"MODEL__DAAF__HAB__SOURCE": "res9"}, r"MODEL.DAAF.HAB.SOURCE: 'res9' is not a stage of the backbone \(\['stem'"),
        ({"MODEL__DAAF__PAB__SOURCE": "conv1"}, "MODEL.DAAF.PAB.SOURCE: 'conv1' is not a stage of the backbone"),
    ],
)
def test_invalid_daaf_configs_fail_clearly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(daaf_cfg("HAB", "PAB", **overrides))


def test_more_groups_than_channels_is_rejected():
    with pytest.raises(ConfigError, match="17 groups but the feature map has only 16 channels"):
        resolve_keypoint_groups("coco17", num_channels=16)


def test_inference_network_is_exactly_the_base_network(tmp_path, caplog):
    torch.manual_seed(0)
    daaf = build_model(daaf_cfg("HAB", "PAB")).eval()
    base = build_model(daaf_cfg()).eval()
    stripped = strip_branches(daaf)
    assert sum(p.numel() for p in stripped.parameters()) == sum(p.numel() for p in base.parameters())
    assert sum(p.numel() for p in daaf.parameters()) > sum(p.numel() for p in base.parameters())
    images = torch.randint(0, 255, (2, 3, 64, 32), dtype=torch.uint8)
    assert count_flops(daaf, (images,)) == count_flops(base, (images,)) > 0
    # a DAAF checkpoint loads into the base config; embeddings are bit-identical
    DAAFCheckpointer(daaf, str(tmp_path)).save("daaf")
    with caplog.at_level(logging.INFO):
        DAAFCheckpointer(base, str(tmp_path)).load(str(tmp_path / "daaf.pth"))
    assert "Ignored" in caplog.text and "training-only parts of the network" in caplog.text
    assert torch.equal(daaf(images), base(images)) and torch.equal(stripped(images), base(images))


def test_a_few_daaf_training_steps_on_synthetic_data_lower_the_loss(tiny_cfg):
    from daaf.data import build_reid_train_loader

    cfg = tiny_cfg.clone()
    cfg.MODEL.DAAF.BRANCHES = ["HAB", "PAB"]
    cfg.MODEL.DAAF.HAB.LOSS_REDUCTION = cfg.MODEL.DAAF.PAB.LOSS_REDUCTION = "mean"
    cfg.MODEL.DAAF.HAB.LOSS_WEIGHT = cfg.MODEL.DAAF.PAB.LOSS_WEIGHT = 1.0
    torch.manual_seed(0)
    batch = next(iter(build_reid_train_loader(cfg, input_fields=model_input_fields(cfg))))
    assert batch.person_labels.has_label.all() and batch.person_labels.masks.shape == (8, 64, 32)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(12):
        losses = model(batch)
        history.append({k: v.item() for k, v in losses.items()})
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    for name in ("loss_hab", "loss_pab", "loss_triplet"):
        assert history[-1][name] < history[0][name], name
    # at inference PAB's heatmaps depend on the crop and none is saturated (the lattice of 1.0 dots
    # PAB once learnt was the same for every crop)
    with torch.no_grad():
        heatmaps = torch.cat(model.eval().branches["PAB"].predict(backbone_features(model, batch)), dim=1)
    assert heatmaps.std(dim=0).mean() > 1e-3 * heatmaps.mean() and heatmaps.max() < 0.9


def test_shared_decoder_normalises_all_groups_together_so_inference_matches_training():
    # With BatchNorm momentum 1 the running statistics are those of the last training batch: the
    # same batch must then give the same predictions at inference as in training. Decoding each
    # group in its own call normalised it by its own statistics in training but by the running
    # statistics of a mixture of groups at inference.
    model = build_model(daaf_cfg("PAB"))
    pab = model.branches["PAB"]
    for module in pab.decoders.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    with torch.no_grad():
        features = backbone_features(model.eval(), fake_batch())
        pab.train()
        training = pab.predict(features)
        pab.eval()
        inference = pab.predict(features)
    for g, (t, i) in enumerate(zip(training, inference)):
        torch.testing.assert_close(i, t, rtol=1e-3, atol=1e-4, msg=f"group {g}")
    # ... and one group decoded alone at inference is the same as within all groups
    torch.testing.assert_close(pab.predictors[2](pab.decode_group(features["res5"], 2)), inference[2])


def test_branch_predictions_start_at_the_prior_not_at_one_half():
    model = build_model(daaf_cfg("HAB", "PAB")).eval()
    with torch.no_grad():
        features = backbone_features(model, fake_batch())
        predictions = [model.branches["HAB"].predict(features), *model.branches["PAB"].predict(features)]
    for p in predictions:
        assert (p - 0.01).abs().max() < 0.005


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({}, set()),
        ({"MODEL.DAAF.BRANCHES": ["HAB"]}, {"masks"}),
        ({"MODEL.DAAF.BRANCHES": ["PAB"]}, {"keypoints"}),
        ({"MODEL.DAAF.BRANCHES": ["HAB", "PAB"]}, {"masks", "keypoints"}),
        ({"MODEL.DAAF.BRANCHES": ["PAB"], "MODEL.DAAF.PAB.TARGET": "part_image"}, set()),  # the image is the target
    ],
)
def test_the_model_says_which_batch_fields_it_trains_on(overrides, expected):
    cfg = daaf_cfg()
    for key, value in overrides.items():
        cfg.merge_from_list([key, str(value)])
    assert model_input_fields(cfg) == expected


def test_a_registered_branch_that_does_not_say_what_it_reads_gets_every_person_label():
    from daaf.data import PersonLabels
    from daaf.modeling import ATTENTION_BRANCH_REGISTRY

    if "SilentBranch" not in ATTENTION_BRANCH_REGISTRY:

        @ATTENTION_BRANCH_REGISTRY.register(name="SilentBranch")
        class SilentBranch(torch.nn.Module):
            def __init__(self, cfg, backbone):
                super().__init__()

    assert model_input_fields(daaf_cfg("SilentBranch", "HAB")) == PersonLabels.FIELDS


def test_the_network_offers_what_tools_need_without_their_naming_a_branch():
    torch.manual_seed(0)
    model = build_model(daaf_cfg("HAB", "PAB")).eval()
    assert model.branch_names == ("HAB", "PAB") and model.branch("PAB") is model.branches["PAB"]
    with pytest.raises(KeyError, match="no attention branch 'XAB' in this network \\(it has: HAB, PAB\\)"):
        model.branch("XAB")
    assert model.describe() == "TriNetHead, ResNet-18 + HAB + PAB"

    groups = model.channel_groups()  # HAB has none; PAB's six keypoint groups of res5's 512 channels
    assert [g.name for g in groups] == ["head", "shoulders", "elbows", "wrists+hips", "knees", "ankles"]
    assert all(g.stage == "res5" for g in groups)
    assert [(g.channels.start, g.channels.stop) for g in groups] == [(85 * i, 85 * (i + 1)) for i in range(6)]

    images = torch.randint(0, 255, (2, 3, 64, 32), dtype=torch.uint8)
    with torch.no_grad():
        features = model.backbone(model.preprocess_image(images))
        heatmaps = model.keypoint_heatmaps(features)
        predicted = model.branch("PAB").predict(features)
    assert model.predicts_keypoints and [h.keypoints for h in heatmaps] == model.branch("PAB").groups
    assert all(torch.equal(h.heatmaps, p) for h, p in zip(heatmaps, predicted))

    stripes = build_model(daaf_cfg("PAB", MODEL__DAAF__PAB__TARGET="part_image"))
    assert not stripes.predicts_keypoints and stripes.keypoint_heatmaps(features) == []
    assert build_model(daaf_cfg()).channel_groups() == [] and build_model(daaf_cfg()).describe() == "TriNetHead, ResNet-18"


def test_the_network_names_its_training_only_keys_and_drops_them_for_inference():
    model = build_model(daaf_cfg("HAB", "PAB"))
    keys = model.state_dict().keys()
    training_only = {k for k in keys if model.is_training_only_key(k)}
    base = model.inference_network()
    assert training_only and set(base.state_dict()) == set(keys) - training_only
    assert base.branch_names == () and not base.training
    assert model.branch_names == ("HAB", "PAB")  # the network itself keeps its branches


def test_keypoint_groups_are_named_by_the_body_parts_they_hold():
    from daaf.modeling.attention import KEYPOINT_GROUP_SCHEMES, keypoint_group_name

    assert [keypoint_group_name(g) for g in KEYPOINT_GROUP_SCHEMES["coco4"]] == ["head", "shoulders+elbows+wrists", "hips+knees", "ankles"]
    assert keypoint_group_name(range(17)) == "all keypoints"
    assert keypoint_group_name([0, 5, 6, 16]) == "shoulders+nose+right_ankle"
