#!/usr/bin/env python
"""Candidates for the decoder's stride-2 3x3 transposed convolution (padding 1, output padding 1),
timed forward + backward against ``F.conv_transpose2d`` in channels-last layout (what
daaf.modeling.attention.Decoder runs), at the shapes of PAB's last two layers (6 groups stacked):

* sub-pixel: one 2x2 convolution to 4x the channels (the four output phases) + pixel shuffle; it
  multiplies by the zeros of the phases that use fewer taps (16 taps computed for 9);
* phases: the four phases as four exact convolutions (1x1, 1x2, 2x1, 2x2 taps), interleaved.

Each is checked equal to the transposed convolution (max abs difference printed) before it is timed.

A second table times the weight gradient alone at the input of each layer of BoT's PAB decoder:
oneDNN's (``convolution_backward``) against the cache-chunked matrix products of
daaf.modeling.attention.transposed_conv, and names the one the decoder takes at that size
(``_MIN_CHUNKED_PIXELS``).

    python projects/DAAF/benchmarks/bench_decoder.py [--batch 48] [--runs 5]
"""

import argparse
import time

import torch
import torch.nn.functional as F

from daaf.modeling.attention import transposed_conv


def transposed(x, weight):
    return F.conv_transpose2d(x, weight, stride=2, padding=1, output_padding=1)


# kernel index of the transposed conv for (output phase, input offset): y[2m] = x[m] w[1];
# y[2m + 1] = x[m] w[2] + x[m + 1] w[0]
_TAP = {(0, 0): 1, (1, 0): 2, (1, 1): 0}


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_in, C_out, 3, 3) transposed-conv weight -> (4 C_out, C_in, 2, 2) conv weight whose output
    channel 4 c + 2 a + b is output phase (a, b) of channel c (pixel_shuffle's order)."""
    c_in, c_out = weight.shape[:2]
    out = weight.new_zeros(c_out, 2, 2, c_in, 2, 2)
    for (a, dh), kh in _TAP.items():
        for (b, dw), kw in _TAP.items():
            out[:, a, b, :, dh, dw] = weight[:, :, kh, kw].t()
    return out.reshape(4 * c_out, c_in, 2, 2)


def subpixel(x, weight):
    return F.pixel_shuffle(F.conv2d(F.pad(x, (0, 1, 0, 1)), subpixel_weight(weight)), 2)


def phases(x, weight):
    b, _, h, w = x.shape
    padded = F.pad(x, (0, 1, 0, 1))
    k = weight.transpose(0, 1)  # (C_out, C_in, 3, 3)
    even_even = F.conv2d(x, k[:, :, 1:2, 1:2])
    even_odd = F.conv2d(padded[:, :, :h], k[:, :, 1:2][..., [2, 0]])
    odd_even = F.conv2d(padded[..., :w], k[:, :, [2, 0], 1:2])
    odd_odd = F.conv2d(padded, k[:, :, [2, 0]][..., [2, 0]])
    rows = torch.stack([torch.stack([even_even, even_odd], -1), torch.stack([odd_even, odd_odd], -1)], -3)  # (B, C, h, 2, w, 2)
    return rows.reshape(b, -1, 2 * h, 2 * w)


def median_time(fn, args, runs):
    """Median seconds of ``fn(*args)`` over ``runs`` calls, after one untimed call."""
    fn(*args)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def forward_backward(fn, x, weight):
    fn(x, weight).sum().backward()


def step_time(fn, x, weight, runs, channels_last):
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x, weight = x.detach().requires_grad_(True), weight.detach().requires_grad_(True)
    return median_time(forward_backward, (fn, x, weight), runs)


def onednn_weight_grad(x, grad, weight):
    """(C_in, C_out, 3, 3) weight gradient of the transposed conv by oneDNN's convolution backward."""
    return torch.ops.aten.convolution_backward(grad, x, weight, None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1, [False, True, False])[1]


def chunked_weight_grad(x, grad, weight):
    return transposed_conv.transposed_conv3x3_weight_grad(x, grad)


def weight_grad_table(batch, runs):
    """Per decoder layer input (BoT's PAB: res5's 341-channel groups at 16x8, then 64 channels):
    oneDNN's weight gradient vs the chunked products, each checked equal first."""
    lines = [
        "\nWeight gradient alone (channels-last), oneDNN vs chunked products",
        "| input (B, C, H, W) | max abs diff / max abs | oneDNN s | chunked s | chunked / oneDNN | the decoder takes |",
        "|---|---|---|---|---|---|",
    ]
    for c, h, w in ((341, 16, 8), (64, 32, 16), (64, 64, 32), (64, 128, 64)):
        x = torch.randn(batch, c, h, w).contiguous(memory_format=torch.channels_last)
        grad = torch.randn(batch, 64, 2 * h, 2 * w).contiguous(memory_format=torch.channels_last)
        tensors = (x, grad, torch.randn(c, 64, 3, 3))
        reference_grad = onednn_weight_grad(*tensors)
        diff = ((chunked_weight_grad(*tensors) - reference_grad).abs().max() / reference_grad.abs().max()).item()
        reference, candidate = median_time(onednn_weight_grad, tensors, runs), median_time(chunked_weight_grad, tensors, runs)
        taken = "chunked" if h * w >= transposed_conv._MIN_CHUNKED_PIXELS else "oneDNN"
        lines.append(f"| {tuple(x.shape)} | {diff:.1e} | {reference:.3f} | {candidate:.3f} | {candidate / reference:.2f} | {taken} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=48, help="images x groups (8 crops x 6 PAB groups)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    weight = torch.randn(64, 64, 3, 3) * 0.05
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; forward + backward, median of {args.runs}")
    print("| input (B, C, H, W) | candidate | layout | max abs diff | s | time / reference |\n|---|---|---|---|---|---|")
    for h, w in ((64, 32), (128, 64)):
        x = torch.randn(args.batch, 64, h, w)
        reference = transposed(x, weight)
        base = step_time(transposed, x, weight, args.runs, channels_last=True)
        for name, fn in (("conv_transpose2d", transposed), ("sub-pixel", subpixel), ("phases", phases)):
            diff = (fn(x, weight) - reference).abs().max().item()
            for channels_last in (True, False):
                t = base if fn is transposed and channels_last else step_time(fn, x, weight, args.runs, channels_last)
                layout = "channels-last" if channels_last else "contiguous"
                print(f"| {tuple(x.shape)} | {name} | {layout} | {diff:.1e} | {t:.3f} | {t / base:.2f} |")
    print(weight_grad_table(args.batch, args.runs))


if __name__ == "__main__":
    main()
