"""Models of the raw EEG (bipolar channels x time), selected by name like timm models.

* ``efficientnet1d``: the 4th-place HMS design. The 16 double-banana channels are an image of
  4 chains (rows) x time with the 4 links of each chain as input channels; EfficientNet-style
  MBConv blocks convolve along time only ((1, k) depthwise kernels, squeeze-excitation, stochastic
  depth), a (3, 1) convolution after each stage mixes neighbouring chains, and GeM pooling
  feeds the head. About 0.9 M parameters.
* ``wavenet``: the public WaveNet starter. One WaveNet (gated dilated convolutions with
  residuals) shared by every channel; each channel's pooled features are averaged over the links
  of its chain, and the chains' features, side by side, feed the head.

* ``raw2d-<timm name>``: the raw EEG as an image for any timm 2-D backbone (2nd place's idea):
  the window is cut into R consecutive segments stacked as rows, so (channels, T) becomes one
  (channels x R, T / R) image, R chosen to make it about square (the time axis zero-padded to a
  multiple of R).

All take (B, channels, samples) float32, the channels chain by chain (``hms.dsp.eeg_raw_inputs``:
the 16 double-banana links LL, LP, RL, RP of 4 each, then for ``banana18`` the central chain
Fz-Cz, Cz-Pz), and return (B, 6) logits. Their heads start at zero (uniform predictions), as the
timm models' do.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

from hms.schema import CENTRAL_CHAIN, LINKS_PER_CHAIN

N_CHAINS = 4
#: The central chain of the 18-link montage (Fz-Cz, Cz-Pz), after the four chains of 4.
CENTRAL_LINKS = len(CENTRAL_CHAIN)
RAW_IMAGE_PREFIX = "raw2d-"


class GeM(nn.Module):
    """Generalized-mean pooling over all positions: (mean x^p)^(1/p), p learned (p=1: average,
    p -> inf: max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.clamp(min=self.eps).pow(self.p).mean(dim=tuple(range(2, x.ndim)))
        return pooled.pow(1.0 / self.p)


class _DropPath(nn.Module):
    """Stochastic depth: drops a residual branch per sample with probability ``p`` in training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class _MBConvTime(nn.Module):
    """MBConv along time: 1x1 expansion, depthwise (1, k) convolution (stride along time),
    squeeze-excitation, 1x1 projection; a residual where the shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, drop_path: float):
        super().__init__()
        hidden = c_in * expand
        self.expand = nn.Sequential(nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU())
        self.depthwise = nn.Sequential(
            nn.Conv2d(
                hidden, hidden, (1, kernel), stride=(1, stride), padding=(0, kernel // 2), groups=hidden, bias=False
            ),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
        )
        squeezed = max(4, c_in // 4)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(hidden, squeezed, 1),
            nn.SiLU(),
            nn.Conv2d(squeezed, hidden, 1),
            nn.Sigmoid(),
        )
        self.project = nn.Sequential(nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = _DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        y = self.project(y * self.se(y))
        return x + self.drop_path(y) if self.residual else y


class EfficientNet1d(nn.Module):
    """See the module docstring. ``stages``: (width, blocks, stride along time) per stage."""

    def __init__(
        self,
        in_chans: int = 16,
        num_classes: int = 6,
        *,
        stem_width: int = 32,
        stages: tuple[tuple[int, int, int], ...] = (
            (24, 1, 1),
            (32, 2, 2),
            (48, 2, 2),
            (80, 3, 2),
            (112, 3, 2),
            (160, 1, 1),
        ),
        kernel: int = 7,
        expand: int = 4,
        head_width: int = 384,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.chains = _chain_count(in_chans)
        self.links = LINKS_PER_CHAIN
        self.stem = nn.Sequential(
            nn.Conv2d(self.links, stem_width, (1, kernel), stride=(1, 2), padding=(0, kernel // 2), bias=False),
            nn.BatchNorm2d(stem_width),
            nn.SiLU(),
        )
        n_blocks = sum(blocks for _, blocks, _ in stages)
        layers: list[nn.Module] = []
        width, index = stem_width, 0
        for out_width, blocks, stride in stages:
            for b in range(blocks):
                rate = drop_path_rate * index / max(1, n_blocks - 1)
                layers.append(_MBConvTime(width, out_width, kernel, stride if b == 0 else 1, expand, rate))
                width, index = out_width, index + 1
            # Neighbouring chains (LL-LP, LP-RP, RP-RL) see each other once per stage.
            layers.append(
                nn.Sequential(
                    nn.Conv2d(width, width, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(width), nn.SiLU()
                )
            )
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Conv2d(width, head_width, 1, bias=False), nn.BatchNorm2d(head_width), nn.SiLU())
        self.pool = GeM()
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(head_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, chains x links, T) -> (B, links, chains, T): chains are rows, links channels; the
        # central chain's two links are padded with zero links to a row of four.
        b, c, t = x.shape
        if c % self.links:
            x = nn.functional.pad(x, (0, 0, 0, self.links - c % self.links))
        x = x.reshape(b, self.chains, self.links, t).transpose(1, 2)
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x)))

    def get_classifier(self) -> nn.Module:
        return self.classifier


class _WaveBlock(nn.Module):
    """Gated dilated convolutions (tanh x sigmoid) with residuals, dilations 1, 2, 4, ..."""

    def __init__(self, c_in: int, c_out: int, n_dilations: int, kernel: int):
        super().__init__()
        self.entry = nn.Conv1d(c_in, c_out, 1)
        self.filters = nn.ModuleList(
            nn.Conv1d(c_out, c_out, kernel, padding="same", dilation=2**i) for i in range(n_dilations)
        )
        self.gates = nn.ModuleList(
            nn.Conv1d(c_out, c_out, kernel, padding="same", dilation=2**i) for i in range(n_dilations)
        )
        self.mix = nn.ModuleList(nn.Conv1d(c_out, c_out, 1) for _ in range(n_dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(x)
        out = x
        for f, g, m in zip(self.filters, self.gates, self.mix):
            x = m(torch.tanh(f(x)) * torch.sigmoid(g(x)))
            out = out + x
        return out


class WaveNet(nn.Module):
    """See the module docstring: a WaveNet shared by every channel, features averaged per chain."""

    def __init__(
        self,
        in_chans: int = 16,
        num_classes: int = 6,
        *,
        widths: tuple[int, ...] = (8, 16, 32, 64),
        dilations: tuple[int, ...] = (12, 8, 4, 1),
        kernel: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.chains = _chain_count(in_chans)
        # Which chain each channel averages into (the central chain has 2 links).
        self.register_buffer("chain_of", torch.arange(in_chans) // LINKS_PER_CHAIN, persistent=False)
        blocks: list[nn.Module] = []
        c_in = 1
        for width, n in zip(widths, dilations):
            blocks += [_WaveBlock(c_in, width, n, kernel), nn.BatchNorm1d(width), nn.AvgPool1d(2)]
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.drop_path = drop_path_rate  # accepted like timm's: a WaveNet block has no branch to drop
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.chains * c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        per_channel = self.features(x.reshape(b * c, 1, t)).mean(dim=-1).reshape(b, c, -1)  # (B, C, F)
        chain_of = cast(torch.Tensor, self.chain_of)
        sums = per_channel.new_zeros(b, self.chains, per_channel.shape[-1]).index_add_(1, chain_of, per_channel)
        counts = torch.bincount(chain_of, minlength=self.chains).to(sums.dtype)
        per_chain = sums / counts[:, None]  # the mean over each chain's links
        return self.classifier(self.dropout(per_chain.flatten(1)))

    def get_classifier(self) -> nn.Module:
        return self.classifier


class RawAsImage(nn.Module):
    """A timm 2-D backbone on the raw EEG cut into segments stacked as rows (module docstring)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    @staticmethod
    def to_image(x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, 1, C x R, ceil(T / R)), R = round(sqrt(T / C)): about square."""
        b, c, t = x.shape
        rows = max(1, round(math.sqrt(t / c)))
        width = -(-t // rows)
        x = nn.functional.pad(x, (0, rows * width - t))
        return x.reshape(b, 1, c * rows, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.to_image(x))

    def get_classifier(self) -> nn.Module:
        return cast(Any, self.backbone).get_classifier()


def _chain_count(in_chans: int) -> int:
    """4 chains of 4 links (16 channels), or 5 with the central chain's 2 links (18)."""
    if in_chans not in (N_CHAINS * LINKS_PER_CHAIN, N_CHAINS * LINKS_PER_CHAIN + CENTRAL_LINKS):
        raise ValueError(
            f"raw-EEG models take the 16 double-banana links or 18 with the central chain, got {in_chans} channels"
        )
    return N_CHAINS + (in_chans > N_CHAINS * LINKS_PER_CHAIN)


def image_backbone(name: str) -> str | None:
    """The timm name of a ``raw2d-<timm name>`` model (None for other names)."""
    return name[len(RAW_IMAGE_PREFIX) :] if name.startswith(RAW_IMAGE_PREFIX) else None


def is_raw_model(name: str) -> bool:
    """Whether ``name`` is a model of the raw EEG (input=raw) rather than of images."""
    return name in RAW_MODELS or image_backbone(name) is not None


#: Name -> class: the raw-EEG models :func:`hms.models.create_model` knows beside timm's.
RAW_MODELS: dict[str, type[nn.Module]] = {"efficientnet1d": EfficientNet1d, "wavenet": WaveNet}
