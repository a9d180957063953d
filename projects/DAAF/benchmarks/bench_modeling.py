#!/usr/bin/env python
"""What DAAF's branches cost to train, per base network: the plain step-time ratio of each variant
to its base network (this step's time over the base step's), its FLOPs ratio (the floor: what the
extra computation alone would cost) and their quotient, with the activation memory a step keeps for
its backward pass; and the deployed network, which must be exactly the base network.

    python projects/DAAF/benchmarks/bench_modeling.py [--networks bot trinet r18] [--steps 7] [--batch-size 32] [--device cpu]

Base networks: the configs of configs/Market1501/ (BoT ResNet-50 256x128 with last stride 1,
TriNet ResNet-50 256x128) and the CPU ResNet-18 of configs/Synthetic/ (TriNet, 128x64); variants:
the DAAF config of each with its branches as they are (HAB, PAB, HAB + PAB). The steps of a base
network's variants are interleaved (one step of each in turn, after warm-up), so that a slower
moment of the machine hits all of them; the median of --steps steps after --warmup steps is
reported, with the page faults of a timed step (a step that maps in fresh memory runs up to 2x
slower; a steady state has next to none). --networks: which base networks (default all; --quick:
r18). FLOPs: daaf.modeling.count_flops of the training forward (backbone, head, branch
predictions). Memory: on a GPU the peak allocated during a step; on the CPU the bytes of the
tensors autograd saves for the backward pass (the bulk of a step's memory), distinct storages once.

Targets (#27): time ratio <= 1.1 x FLOPs ratio; deployed params and FLOPs ratio 1.000, latency
ratio 0.97-1.03.
"""

import argparse
import os
import resource
import time

# isort: off
import daaf  # noqa: F401  (before torch, as in tools/train_net.py: it sets PyTorch's CPU allocator to huge pages)

# isort: on
import torch
from torch import nn

from daaf.config import build_config
from daaf.data import PersonLabels, ReIDBatch
from daaf.data.person_labels import NUM_KEYPOINTS
from daaf.modeling import build_model, count_flops, count_parameters, strip_branches
from daaf.utils.env import keep_freed_cpu_memory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# (name, base config, DAAF config); the DAAF config's branch settings (HAB's encoder, PAB's groups)
# are the variants' own
BASE_NETWORKS = {
    "bot": ("BoT ResNet-50, last stride 1", "configs/Market1501/bot_R50.yaml", "configs/Market1501/daaf_bot_R50.yaml"),
    "trinet": ("TriNet ResNet-50", "configs/Market1501/trinet_R50.yaml", "configs/Market1501/daaf_trinet_R50.yaml"),
    "r18": ("TriNet ResNet-18 (CPU demo)", "configs/Synthetic/trinet_R18.yaml", "configs/Synthetic/daaf_trinet_R18.yaml"),
}
VARIANTS = {"+ HAB": ["HAB"], "+ PAB": ["PAB"], "+ HAB + PAB": ["HAB", "PAB"]}


class _TrainingForward(nn.Module):
    """Everything a training step computes forward (backbone, head, branch predictions) as plain
    tensors, so fvcore can trace it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        features = self.model.backbone(self.model.preprocess_image(images))
        outputs = [self.model.heads(features[self.model.head_in_feature])["features"]]
        for name in self.model.branch_names:
            pred = self.model.branch(name).predict(features)
            outputs.extend(pred if isinstance(pred, list) else [pred])
        return tuple(outputs)


def variant_configs(base_file: str, daaf_file: str, device: str, num_classes: int = 8) -> dict:
    """{variant name: config}: the base network and its DAAF config with each set of branches."""
    common = ["MODEL.DEVICE", device, "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", str(num_classes)]
    configs = {"base network": build_config(os.path.join(REPO, base_file), common)}
    for name, branches in VARIANTS.items():
        configs[name] = build_config(os.path.join(REPO, daaf_file), [*common, "MODEL.DAAF.BRANCHES", str(branches)])
    return configs


def fake_batch(n: int, size, device) -> ReIDBatch:
    """n crops (n / 4 identities of 4) with full person labels, as the training loader gives them."""
    h, w = size
    keypoints = torch.rand(n, NUM_KEYPOINTS, 3) * torch.tensor([w, h, 1.0])
    keypoints[..., 2] = 2
    batch = ReIDBatch(
        images=torch.randint(0, 255, (n, 3, h, w), dtype=torch.uint8),
        pids=torch.arange(n // 4).repeat_interleave(4),
        camids=torch.zeros(n, dtype=torch.int64),
        file_names=[""] * n,
        person_labels=PersonLabels(
            has_label=torch.ones(n, dtype=torch.bool), masks=torch.randint(0, 2, (n, h, w), dtype=torch.uint8), keypoints=keypoints
        ),
    )
    return batch.to(device)


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class _SavedBytes:
    """Bytes of the distinct storages autograd saves for backward during a forward pass."""

    def __init__(self):
        self.storages = {}

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def page_faults() -> int:
    """Page faults of this process so far (minor: memory mapped in on first touch)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def train_step(model, optimizer, batch, device, measure_memory=False):
    """One optimizer step; (seconds, memory bytes or None)."""
    saved = _SavedBytes()
    if measure_memory and torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _synchronize(device)
    start = time.perf_counter()
    if measure_memory and torch.device(device).type != "cuda":
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            loss = sum(model(batch).values())
    else:
        loss = sum(model(batch).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    _synchronize(device)
    seconds = time.perf_counter() - start
    if not measure_memory:
        return seconds, None
    return seconds, torch.cuda.max_memory_allocated() if torch.device(device).type == "cuda" else saved.total


def training_table(name, base_file, daaf_file, batch_size, steps, warmup, device, amp=False) -> str:
    torch.manual_seed(0)
    configs = variant_configs(base_file, daaf_file, device, num_classes=batch_size // 4)
    size = tuple(configs["base network"].INPUT.SIZE_TRAIN)
    batch = fake_batch(batch_size, size, device)
    models = {v: build_model(cfg).train() for v, cfg in configs.items()}
    optimizers = {v: torch.optim.Adam(m.parameters(), lr=1e-4) for v, m in models.items()}
    times = {v: [] for v in models}
    faults = {v: 0 for v in models}
    memory = {}
    for i in range(warmup + steps):  # interleaved: one step of every variant in turn
        for v, model in models.items():
            faults_before = page_faults()
            with torch.autocast(torch.device(device).type, enabled=amp):
                seconds, used = train_step(model, optimizers[v], batch, device, measure_memory=i == warmup)
            if i >= warmup:
                times[v].append(seconds)
                faults[v] += page_faults() - faults_before
            if used is not None:
                memory[v] = used
    cpu_images = batch.images[:2].cpu()
    counted = {v: count_flops(_TrainingForward(m.cpu()).train(), (cpu_images,)) for v, m in models.items()}
    median = {v: sorted(t)[len(t) // 2] for v, t in times.items()}
    base_t, base_f, base_m = median["base network"], counted["base network"], memory["base network"]
    memory_kind = "peak allocated" if torch.device(device).type == "cuda" else "saved activations"
    lines = [
        f"\nTraining step, {name} ({size[0]}x{size[1]}, batch {batch_size}, {device}{', AMP' if amp else ''}; "
        f"median of {steps} interleaved steps after {warmup})",
        f"| variant | s/step | time / base | FLOPs / base | (time / base) / (FLOPs / base) | {memory_kind} MB | memory / base | page faults / step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in models:
        t, f, m = median[v] / base_t, counted[v] / base_f, memory[v] / base_m
        lines.append(
            f"| {v} | {median[v]:.3f} | {t:.2f} | {f:.2f} | {t / f:.2f} | {memory[v] / 2**20:,.0f} | {m:.2f} | {faults[v] / steps:,.0f} |"
        )
    lines.append("target: (time / base) / (FLOPs / base) <= 1.1")
    return "\n".join(lines)


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


def inference_table(base_file, daaf_file, batch_size, runs) -> str:
    torch.manual_seed(0)
    configs = variant_configs(base_file, daaf_file, "cpu")
    base = build_model(configs["base network"]).eval()
    deployed = strip_branches(build_model(configs["+ HAB + PAB"]).eval())
    images = torch.randint(0, 255, (batch_size, 3, *configs["base network"].INPUT.SIZE_TEST), dtype=torch.uint8)
    base_flops, daaf_flops = count_flops(base, (images,)), count_flops(deployed, (images,))
    base_lat, daaf_lat = [], []
    for _ in range(6):  # interleaved, so drift hits both; the fastest median of each (the least disturbed)
        base_lat.append(latency(base, images, runs))
        daaf_lat.append(latency(deployed, images, runs))
    b, d = min(base_lat), min(daaf_lat)
    size = "x".join(map(str, images.shape[-2:]))
    return "\n".join(
        [
            f"\nInference ({base_file} vs its DAAF config deployed, {size}, batch {batch_size})",
            "| | base | DAAF deployed | ratio |",
            "|---|---|---|---|",
            f"| params | {count_parameters(base):,} | {count_parameters(deployed):,} | {count_parameters(deployed) / count_parameters(base):.3f} |",
            f"| FLOPs | {base_flops:,.0f} | {daaf_flops:,.0f} | {daaf_flops / base_flops:.3f} |",
            f"| latency s | {b:.4f} | {d:.4f} | {d / b:.3f} |",
            "targets: params and FLOPs ratio 1.000; latency ratio 0.97-1.03",
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", choices=list(BASE_NETWORKS), default=list(BASE_NETWORKS))
    parser.add_argument("--quick", action="store_true", help="the ResNet-18 only (--networks r18)")
    parser.add_argument("--steps", type=int, default=7, help="timed steps per variant (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first: a step that maps in new memory is slow")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="also the GPU tables with SOLVER.AMP-style autocast")
    args = parser.parse_args()
    networks = [BASE_NETWORKS[key] for key in (["r18"] if args.quick else args.networks)]
    kept = keep_freed_cpu_memory()  # as every training process does (default_setup)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}, "
        f"freed CPU memory kept for reuse: {kept}"
    )
    for name, base_file, daaf_file in networks:
        print(training_table(name, base_file, daaf_file, args.batch_size, args.steps, args.warmup, args.device), flush=True)
        if args.amp:
            print(training_table(name, base_file, daaf_file, args.batch_size, args.steps, args.warmup, args.device, amp=True), flush=True)
    print(inference_table(*networks[0][1:], 8, 20))


if __name__ == "__main__":
    main()
