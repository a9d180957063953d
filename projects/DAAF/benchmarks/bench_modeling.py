#!/usr/bin/env python
"""Cost of DAAF's branches: training-step time of each variant as a ratio to the base network,
next to its FLOPs ratio (the floor), for ResNet-50 at 256x128 and a tiny CPU config; and the
inference network (params, FLOPs, latency), which must be exactly the base network's.

    python projects/DAAF/benchmarks/bench_modeling.py [--quick]

Targets: training time ratio <= 1.1 x FLOPs ratio; inference params and FLOPs ratio 1.000,
latency ratio 0.97-1.03.
"""

import argparse
import time

import torch
from torch import nn

from daaf.config import get_cfg
from daaf.data import PersonLabels, ReIDBatch
from daaf.data.person_labels import NUM_KEYPOINTS
from daaf.modeling import build_model, count_parameters, strip_branches
from daaf.utils.fvcore_compat import FlopCountAnalysis

VARIANTS = {
    "base": {},
    "HAB copy": {"MODEL.DAAF.BRANCHES": ["HAB"]},
    "HAB shared": {"MODEL.DAAF.BRANCHES": ["HAB"], "MODEL.DAAF.HAB.ENCODER": "shared"},
    "PAB": {"MODEL.DAAF.BRANCHES": ["PAB"]},
    "HAB + PAB": {"MODEL.DAAF.BRANCHES": ["HAB", "PAB"]},
}


class _TrainingForward(nn.Module):
    """Everything a training step computes forward (backbone, head, branch predictions) as plain
    tensors, so fvcore can trace it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        features = self.model.backbone(self.model.preprocess_image(images))
        outputs = [self.model.heads(features["res5"])["features"]]
        for name in self.model.branch_names:
            pred = self.model.branch(name).predict(features)
            outputs.extend(pred if isinstance(pred, list) else [pred])
        return tuple(outputs)


def flops(module, inputs) -> float:
    return FlopCountAnalysis(module, inputs).unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()


def make_cfg(depth, size, overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.DEPTH", str(depth), "MODEL.BACKBONE.PRETRAIN", "False"])
    for key, value in overrides.items():
        cfg.merge_from_list([key, str(value)])
    return cfg


def fake_batch(n, size):
    h, w = size
    keypoints = torch.rand(n, NUM_KEYPOINTS, 3) * torch.tensor([w, h, 1.0])
    keypoints[..., 2] = 2
    return ReIDBatch(
        images=torch.randint(0, 255, (n, 3, h, w), dtype=torch.uint8),
        pids=torch.arange(n // 4).repeat_interleave(4),
        camids=torch.zeros(n, dtype=torch.int64),
        file_names=[""] * n,
        person_labels=PersonLabels(
            has_label=torch.ones(n, dtype=torch.bool), masks=torch.randint(0, 2, (n, h, w), dtype=torch.uint8), keypoints=keypoints
        ),
    )


def step_time(model, batch, steps, warmup=2):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def latency(model, images, runs):
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(runs + 2):
            start = time.perf_counter()
            model(images)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_table(name, depth, size, batch_size, steps):
    torch.manual_seed(0)
    batch = fake_batch(batch_size, size)
    rows = {}
    for variant, overrides in VARIANTS.items():
        model = build_model(make_cfg(depth, size, overrides))
        rows[variant] = (step_time(model, batch, steps), flops(_TrainingForward(model).train(), (batch.images[:2],)))
    base_t, base_f = rows["base"]
    print(f"\nTraining step, {name} ({size[0]}x{size[1]}, batch {batch_size}, median of {steps} steps)")
    print(f"{'variant':<12} {'s/step':>8} {'time ratio':>11} {'FLOPs ratio':>12} {'time/FLOPs':>11}")
    for variant, (t, f) in rows.items():
        print(f"{variant:<12} {t:8.3f} {t / base_t:11.3f} {f / base_f:12.3f} {(t / base_t) / (f / base_f):11.3f}")
    print("target: time/FLOPs <= 1.1")


def inference_table(depth, size, batch_size, runs):
    torch.manual_seed(0)
    base = build_model(make_cfg(depth, size, {})).eval()
    daaf = build_model(make_cfg(depth, size, VARIANTS["HAB + PAB"])).eval()
    deployed = strip_branches(daaf)
    images = torch.randint(0, 255, (batch_size, 3, *size), dtype=torch.uint8)
    base_flops = flops(base, (images,))
    base_lat = [latency(base, images, runs)]
    daaf_lat = [latency(deployed, images, runs)]
    base_lat.append(latency(base, images, runs))  # interleaved, so drift hits both
    daaf_lat.append(latency(deployed, images, runs))
    b, d = min(base_lat), min(daaf_lat)
    print(f"\nInference (ResNet-{depth}, {size[0]}x{size[1]}, batch {batch_size}): DAAF (HAB + PAB) deployed vs base")
    print(f"{'':<10} {'base':>14} {'DAAF':>14} {'ratio':>7}")
    print(
        f"{'params':<10} {count_parameters(base):>14,} {count_parameters(deployed):>14,} {count_parameters(deployed) / count_parameters(base):7.3f}"
    )
    print(f"{'FLOPs':<10} {base_flops:>14,.0f} {flops(deployed, (images,)):>14,.0f} {flops(deployed, (images,)) / base_flops:7.3f}")
    print(f"{'latency s':<10} {b:>14.4f} {d:>14.4f} {d / b:7.3f}")
    print("targets: params and FLOPs ratio 1.000; latency ratio 0.97-1.03")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps, no ResNet-50")
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    training_table("tiny CPU config: ResNet-18", 18, (128, 64), 16, 3 if args.quick else 8)
    if not args.quick:
        training_table("ResNet-50", 50, (256, 128), 8, 4)
    inference_table(18 if args.quick else 50, (256, 128), 8, 5 if args.quick else 10)


if __name__ == "__main__":
    main()
