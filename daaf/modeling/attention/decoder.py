"""DAAF's decoder: stride-2 transposed convolutions that upsample a feature map 2^n times."""

import math
from typing import List, Optional

import torch
from torch import nn

from daaf.config import configurable
from daaf.utils.errors import ConfigError

from .pointwise import grouped_pointwise_conv, normalized_grouped_pointwise_conv
from .transposed_conv import stride2_transposed_conv3x3

__all__ = ["Decoder", "Predictor"]


class _UpsamplingConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (same parameters and state-dict keys) whose 3x3 stride-2 form runs as
    :func:`stride2_transposed_conv3x3`, with its faster weight gradient on CPU."""

    def forward(self, x):
        if (self.kernel_size, self.stride, self.padding, self.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1)) and (
            self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros"
        ):
            return stride2_transposed_conv3x3(x, self.weight, self.bias)
        return super().forward(x)


class Decoder(nn.Module):
    """``num_deconvs`` x [ConvTranspose2d(kernel, stride 2) (+ norm) (+ ReLU)], each doubling H and W.

    Paper (Table 1) / released TensorFlow code: 4 deconvs of 3x3 with 64 channels, BN + ReLU after
    the first three and BN without ReLU after the last. ``norm=""`` gives the released PyTorch-BoT
    variant (no BN/ReLU). (B, in_channels, h, w) -> (B, channels, h * 2^n, w * 2^n).
    """

    @configurable
    def __init__(self, *, in_channels: int, num_deconvs: int = 4, channels: int = 64, kernel_size: int = 3, norm: str = "BN"):
        super().__init__()
        if norm not in ("BN", ""):
            raise ConfigError(f"MODEL.DAAF.DECODER.NORM: expected 'BN' or '', got '{norm}'")
        padding = (kernel_size - 1) // 2
        output_padding = 2 + 2 * padding - kernel_size  # makes every layer exactly 2x
        if not 0 <= output_padding <= 1 or kernel_size < 2:
            raise ConfigError(f"MODEL.DAAF.DECODER.KERNEL_SIZE {kernel_size} cannot upsample exactly 2x")
        layers = []
        for i in range(num_deconvs):
            layers.append(
                _UpsamplingConvTranspose2d(
                    in_channels if i == 0 else channels,
                    channels,
                    kernel_size,
                    stride=2,
                    padding=padding,
                    output_padding=output_padding,
                    bias=not norm,
                )
            )
            if norm:
                layers.append(nn.BatchNorm2d(channels))
                if i < num_deconvs - 1:
                    layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels
        self.upsampling = 2**num_deconvs
        # Transposed convolutions run 2-3x faster in channels-last layout on CPU (oneDNN) and
        # use tensor cores on GPU; the output keeps that layout for the predictor.
        self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg, in_channels):
        d = cfg.MODEL.DAAF.DECODER
        return {
            "in_channels": in_channels,
            "num_deconvs": d.NUM_DECONVS,
            "channels": d.CHANNELS,
            "kernel_size": d.KERNEL_SIZE,
            "norm": d.NORM,
        }

    def forward(self, x):
        x, norm = self.forward_before_last_norm(x)
        return x if norm is None else norm(x)

    def forward_before_last_norm(self, x):
        """``forward`` without its last BatchNorm: (the map before it, that BatchNorm), or (the
        output, None) without norms; for a predictor that folds the norm in (Predictor.stacked)."""
        norm = self.layers[-1] if isinstance(self.layers[-1], nn.BatchNorm2d) else None
        x = x.contiguous(memory_format=torch.channels_last)
        for layer in self.layers[:-1] if norm is not None else self.layers:
            x = layer(x)
        return x, norm


class Predictor(nn.Module):
    """1x1 convolution to ``out_channels`` maps, then the final activation ("sigmoid" or "").

    The convolution starts near zero (weights ~ N(0, 0.001^2)) with its bias at the logit of
    ``prior`` (the sigmoid's output then starts at ``prior`` everywhere), as detection and pose
    heads do: with PyTorch's default initialisation the maps start at ~0.5, the first steps drive
    the background down with large updates, and pixels that overshoot to logits of 50+ stay
    saturated (the sigmoid's gradient vanishes there): PAB learnt a fixed lattice of 1.0 dots.
    The convolution runs as :func:`grouped_pointwise_conv` (the weights stay an ``nn.Conv2d``'s).
    """

    def __init__(self, in_channels: int, out_channels: int, activation: str = "sigmoid", prior: float = 0.01):
        super().__init__()
        if activation not in ("sigmoid", ""):
            raise ConfigError(f"MODEL.DAAF.DECODER.ACTIVATION: expected 'sigmoid' or '', got '{activation}'")
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        nn.init.normal_(self.conv.weight, std=0.001)
        nn.init.constant_(self.conv.bias, math.log(prior / (1 - prior)) if activation == "sigmoid" else 0.0)
        self.activation = activation

    def activate(self, maps: torch.Tensor) -> torch.Tensor:
        """The final activation of (B, K, H, W) logits."""
        return maps.sigmoid() if self.activation == "sigmoid" else maps

    def forward(self, x):
        """(B, in_channels, H, W) -> (B, out_channels, H, W)."""
        return self.activate(grouped_pointwise_conv(x, [self.conv.weight], [self.conv.bias])[0])

    @staticmethod
    def stacked(predictors, x: torch.Tensor, norm: Optional[nn.BatchNorm2d] = None) -> List[torch.Tensor]:
        """Predictor g on the g-th of G equal batch slices of ``norm(x)`` (G * B, C, H, W) in one
        batched call, ``norm`` (a decoder's last BatchNorm, see Decoder.forward_before_last_norm)
        folded in: G maps (B, K_g, H, W), equal to ``[p(s) for p, s in zip(predictors, norm(x).chunk(G))]``."""
        weights, biases = [p.conv.weight for p in predictors], [p.conv.bias for p in predictors]
        maps = normalized_grouped_pointwise_conv(x, norm, weights, biases)
        return [p.activate(m) for p, m in zip(predictors, maps)]
