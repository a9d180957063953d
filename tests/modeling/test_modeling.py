import pytest
import torch
import torch.nn.functional as F
import torchvision

from daaf.config import get_cfg
from daaf.modeling import build_model
from daaf.modeling.backbones import ResNet
from daaf.modeling.heads import BNNeckHead, TriNetHead
from daaf.modeling.losses import CenterLoss, CrossEntropyLoss, TripletLoss
from daaf.utils.errors import ConfigError, UserError

from conftest import make_batch


def small_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.DEPTH", "18", "MODEL.BACKBONE.PRETRAIN", "False"])
    for key, value in overrides.items():
        cfg.merge_from_list([key.replace("__", "."), str(value)])
    return cfg


@pytest.mark.parametrize("last_stride,res5_size", [(2, (2, 1)), (1, (4, 2))])
def test_resnet_stages_and_last_stride(last_stride, res5_size):
    backbone = ResNet(depth=18, last_stride=last_stride)
    outputs = backbone(torch.zeros(2, 3, 64, 32))
    assert list(outputs) == ["stem", "res2", "res3", "res4", "res5"]
    assert outputs["res2"].shape == (2, 64, 16, 8)
    assert outputs["res5"].shape == (2, 512, *res5_size)
    assert backbone.output_shape()["res5"].stride == (32 if last_stride == 2 else 16)
    assert ResNet(depth=50, last_stride=1)(torch.zeros(1, 3, 64, 32))["res5"].shape == (1, 2048, 4, 2)


def test_resnet_loads_imagenet_weights_from_a_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    backbone = ResNet(depth=18, pretrained=True, pretrain_path=str(path))
    assert torch.equal(backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(backbone.res5[1].conv2.weight, reference.layer4[1].conv2.weight)
    with pytest.raises(UserError, match="PRETRAIN_PATH: file not found"):
        ResNet(depth=18, pretrained=True, pretrain_path=str(tmp_path / "missing.pth"))
    with pytest.raises(UserError, match="shapes do not match resnet50"):
        ResNet(depth=50, pretrained=True, pretrain_path=str(path))


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_is_torchvisions_network_with_its_parameter_names(depth):
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    backbone = ResNet(depth=depth).eval()
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    layout = {"conv1": "stem.0", "bn1": "stem.1", "layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
    renamed = {layout[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v for k, v in state.items()}
    assert set(renamed) == set(backbone.state_dict())  # same parameters and buffers, same shapes below
    torch.manual_seed(0)
    seeded_reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).state_dict()
    torch.manual_seed(0)
    seeded = ResNet(depth=depth).state_dict()  # the same seeded initialisation as torchvision's
    assert all(
        torch.equal(seeded[layout[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]], v)
        for k, v in seeded_reference.items()
        if not k.startswith("fc.")
    )
    backbone.load_state_dict(renamed)
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = reference.layer4(
            reference.layer3(reference.layer2(reference.layer1(reference.maxpool(reference.relu(reference.bn1(reference.conv1(images)))))))
        )
        torch.testing.assert_close(backbone(images)["res5"], expected)


def test_resnet_rejects_bad_depth_and_stride():
    with pytest.raises(ConfigError, match="DEPTH"):
        ResNet(depth=42)
    with pytest.raises(ConfigError, match="LAST_STRIDE"):
        ResNet(depth=18, last_stride=3)


def test_trinet_head_shapes_and_bnneck_head():
    feats = torch.randn(4, 512, 4, 2)
    trinet = TriNetHead(in_channels=512, mid_dim=32, embedding_dim=16)
    assert trinet(feats)["features"].shape == (4, 16)
    assert trinet.eval()(feats).shape == (4, 16)
    neck = BNNeckHead(in_channels=512, num_classes=7)
    out = neck(feats)
    assert out["features"].shape == (4, 512) and out["logits"].shape == (4, 7)
    assert not neck.bottleneck.bias.requires_grad
    assert neck.classifier.bias is None and neck.classifier.weight.std().item() == pytest.approx(0.001, rel=0.2)
    neck.eval()
    pooled = feats.mean(dim=(2, 3))
    expected = (pooled - neck.bottleneck.running_mean) / torch.sqrt(neck.bottleneck.running_var + neck.bottleneck.eps)
    torch.testing.assert_close(neck(feats), expected * neck.bottleneck.weight + neck.bottleneck.bias)
    before = BNNeckHead(in_channels=512, num_classes=7, neck_feat="before", norm_feat=True).eval()
    torch.testing.assert_close(before(feats), F.normalize(pooled, dim=1))


def test_triplet_loss_against_hand_computed_value():
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [1.0, 1.0]])
    pids = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest positive d=5 (to 1), hardest negative d=1 (to 2)
    # anchor 1: pos 5; negatives: to 2 -> sqrt(20), to 3 -> sqrt(13)  => d_an = sqrt(13)
    # anchor 2: pos 1 (to 3); negatives: to 0 -> 1, to 1 -> sqrt(20)   => d_an = 1
    # anchor 3: pos 1; negatives: to 0 -> sqrt(2), to 1 -> sqrt(13)    => d_an = sqrt(2)
    d_ap = torch.tensor([5.0, 5.0, 1.0, 1.0])
    d_an = torch.tensor([1.0, 13**0.5, 1.0, 2**0.5])
    soft = TripletLoss(margin=0.0)({"features": feats}, pids)
    torch.testing.assert_close(soft, F.softplus(d_ap - d_an).mean())
    hinge = TripletLoss(margin=0.3, weight=2.0)({"features": feats}, pids)
    torch.testing.assert_close(hinge, 2.0 * F.relu(d_ap - d_an + 0.3).mean())


def test_cross_entropy_with_label_smoothing_against_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    pids = torch.tensor([0, 2])
    eps = 0.1
    targets = (1 - eps) * F.one_hot(pids, 3).float() + eps / 3
    expected = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(CrossEntropyLoss(epsilon=eps)({"logits": logits}, pids), expected)


def test_center_loss_value_and_bot_equivalent_center_update():
    torch.manual_seed(0)
    loss_fn = CenterLoss(num_classes=3, feat_dim=2, weight=0.5, center_lr=0.5)
    centers = loss_fn.centers.clone()
    feats = torch.randn(4, 2)
    pids = torch.tensor([0, 0, 2, 2])
    value = loss_fn({"features": feats}, pids)
    torch.testing.assert_close(value, 0.5 * (feats - centers[pids]).pow(2).sum() / 4)
    # BoT: SGD(lr 0.5) on the centres with gradients rescaled by 1 / weight
    reference = centers.clone().requires_grad_(True)
    (0.5 * (feats - reference[pids]).pow(2).sum() / 4).backward()
    torch.testing.assert_close(loss_fn.centers, centers - 0.5 * reference.grad / 0.5)
    assert torch.equal(loss_fn.centers[1], centers[1])  # no sample: unchanged


def test_model_eval_returns_embeddings_and_training_returns_losses():
    cfg = small_cfg(MODEL__HEADS__NAME="BNNeckHead", MODEL__HEADS__NUM_CLASSES=4, MODEL__BACKBONE__LAST_STRIDE=1)
    cfg.MODEL.LOSSES.NAME = ["CrossEntropyLoss", "TripletLoss", "CenterLoss"]
    model = build_model(cfg)
    batch = make_batch(torch.randint(0, 255, (8, 3, 64, 32), dtype=torch.uint8), torch.arange(4).repeat_interleave(2))
    losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_triplet", "loss_center"}
    model.eval()
    assert model(batch).shape == (8, 512)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    cfg = small_cfg(MODEL__HEADS__EMBEDDING_DIM=16, MODEL__HEADS__MID_DIM=32)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    base = torch.randint(0, 255, (4, 3, 64, 32), generator=generator)
    images = (base.repeat_interleave(2, 0) + torch.randint(-10, 10, (8, 3, 64, 32), generator=generator)).clamp(0, 255).to(torch.uint8)
    batch = make_batch(images, torch.arange(4).repeat_interleave(2))
    first = None
    for _ in range(30):
        loss = sum(model(batch).values())
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_cuda_device_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="MODEL.DEVICE is 'cuda'"):
        build_model(get_cfg())


def _triplet_worker(features, pids, out_dir):
    import os

    from daaf.utils import comm

    rank, world = comm.get_rank(), comm.get_world_size()
    results = {}
    for margin in (0.0, 0.3):
        local = features.chunk(world)[rank].clone().requires_grad_(True)
        loss = TripletLoss(margin=margin)({"features": local}, pids.chunk(world)[rank])
        loss.backward()
        # DistributedDataParallel averages the parameter gradients over the ranks
        results[margin] = {"loss": loss.detach(), "grad": local.grad / world}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.mark.usefixtures("cpu_processes")
def test_triplet_loss_on_two_processes_mines_the_global_batch_like_one_process(tmp_path):
    """Each rank holds half the batch; the hardest examples of some anchors are on the other rank."""
    from daaf.engine import launch

    torch.manual_seed(0)
    features = torch.randn(16, 8)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3] * 2)  # every identity on both ranks
    launch(_triplet_worker, 2, dist_url="auto", args=(features, pids, str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for margin in (0.0, 0.3):  # TriNet's soft margin, BoT's margin
        full = features.clone().requires_grad_(True)
        expected = TripletLoss(margin=margin)({"features": full}, pids)
        expected.backward()
        local_only = TripletLoss(margin=margin)({"features": features[:8]}, pids[:8])
        assert not torch.allclose(local_only, expected)  # mining within a rank's half is another loss
        for r, result in enumerate(ranks):
            torch.testing.assert_close(result[margin]["loss"], expected.detach())
            torch.testing.assert_close(result[margin]["grad"], full.grad[8 * r : 8 * (r + 1)])
