import pytest
import torch

from daaf.analysis import branch_outputs
from daaf.analysis.branch_outputs import heatmap_peak_hits
from daaf.config import get_cfg
from daaf.modeling import build_model
from daaf.modeling.attention import KeypointHeatmaps


def pab_cfg():
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.DEPTH", "18", "MODEL.BACKBONE.PRETRAIN", "False"])
    cfg.MODEL.DAAF.BRANCHES = ["PAB"]
    return cfg


def test_heatmap_peaks_hit_keypoints_within_alpha_of_the_crop_height():
    heatmaps = torch.zeros(1, 3, 16, 8)  # 64x32 crops: 4 image pixels per heatmap pixel
    heatmaps[0, 0, 2, 3] = heatmaps[0, 1, 10, 1] = heatmaps[0, 2, 5, 5] = 1.0  # peaks at (14, 10), (6, 42), (22, 22)
    keypoints = torch.tensor([[[14.0, 16.0, 2], [6.0, 50.0, 2], [22.0, 22.0, 0]]])  # 6 px, 8 px away; invisible
    hits, visible = heatmap_peak_hits(heatmaps, keypoints, (64, 32), alpha=0.1)  # within 6.4 px
    assert hits.tolist() == [[True, False, False]] and visible.tolist() == [[True, True, False]]
    assert heatmap_peak_hits(heatmaps, keypoints, (64, 32), alpha=0.13)[0].tolist() == [[True, True, False]]


def test_pab_pck_reports_the_fixed_pose_baseline_and_the_spread_across_crops(monkeypatch):
    model = build_model(pab_cfg())
    pab = model.branch("PAB")
    keypoints = torch.zeros(3, 17, 3)
    keypoints[..., 2] = 2
    keypoints[..., 0] = torch.tensor([6.0, 14.0, 22.0])[:, None]  # the crops' keypoints move along x
    keypoints[..., 1] = 30.0

    def peaks_at(xs):  # every heatmap of crop b peaks at (xs[b], 30) in image pixels
        maps = torch.zeros(3, 17, 16, 8)
        for b, x in enumerate(xs):
            maps[b, :, 7, int(x // 4)] = 1.0
        return [KeypointHeatmaps(name, group, maps[:, group]) for name, group in zip(pab.group_names, pab.groups)]

    images = torch.zeros(3, 3, 64, 32, dtype=torch.uint8)
    monkeypatch.setattr(branch_outputs, "predicted_keypoint_heatmaps", lambda m, i: peaks_at([6.0, 14.0, 22.0]))
    following = branch_outputs.keypoint_pck(model, images, keypoints)
    monkeypatch.setattr(branch_outputs, "predicted_keypoint_heatmaps", lambda m, i: peaks_at([14.0, 14.0, 14.0]))
    fixed = branch_outputs.keypoint_pck(model, images, keypoints)
    assert following["all"] == 1.0 and fixed["all"] == pytest.approx(1 / 3)
    assert following["fixed_pose"] == fixed["fixed_pose"] == pytest.approx(1 / 3)  # the median pose hits the middle crop
    assert following["spread"] > 0 and fixed["spread"] == 0
