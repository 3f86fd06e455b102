"""CalciumGAN networks (Li et al. 2020): generator, critic, phase shuffle, gradient penalty.

Tensors are ``(batch, cells, frames)``: cells are channels, convolutions run over time only.
Values are scaled dF/F in [0, 1] (see :mod:`cabench.generators.gan_data`).

Generator: ``z ~ N(0, I)`` (``latent`` dims) -> dense to ``start_channels x window / 2^k`` ->
``k`` transposed 1-D convolutions (kernel 24, stride 2, 'same' padding) with widths
``gen_channels`` and then ``n_cells``, each followed by LayerNorm over channels and LeakyReLU
(slope 0.3) -> a per-frame dense mixing of the cells -> sigmoid.

Critic: ``k`` 1-D convolutions (kernel 24, stride 2, 'same') with widths ``critic_channels``,
LeakyReLU 0.3, phase shuffle (one random shift in ``[-m, m]`` per batch, reflect padding) after
every layer but the last, then flatten -> dense(1). No normalisation (WGAN-GP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from cabench.errors import CabenchError


@dataclass(frozen=True)
class GanConfig:
    """Architecture of a CalciumGAN; defaults are the paper's (except ``n_cells``/``window``,
    which come from the data and the command line)."""

    n_cells: int = 102
    window: int = 2048
    latent: int = 32
    start_channels: int = 32
    gen_channels: tuple[int, ...] = (320, 256, 192, 128)
    critic_channels: tuple[int, ...] = (64, 128, 192, 256, 320)
    kernel: int = 24
    slope: float = 0.3
    phase_shuffle: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "gen_channels", tuple(int(c) for c in self.gen_channels))
        object.__setattr__(self, "critic_channels",
                           tuple(int(c) for c in self.critic_channels))
        if self.n_cells < 1 or self.latent < 1 or self.start_channels < 1:
            raise CabenchError("n_cells, latent and start_channels must be positive")
        if self.kernel < 2 or self.kernel % 2:
            raise CabenchError(f"kernel must be even and >= 2, got {self.kernel}")
        if not self.critic_channels:
            raise CabenchError("the critic needs at least one convolution")
        for name, k in (("generator", self.gen_depth), ("critic", self.critic_depth)):
            if self.window % 2**k or self.window // 2**k < 1:
                raise CabenchError(f"window {self.window} must be a multiple of 2^{k} = {2**k} "
                                   f"({k} stride-2 layers in the {name})")

    @property
    def gen_depth(self) -> int:
        return len(self.gen_channels) + 1

    @property
    def critic_depth(self) -> int:
        return len(self.critic_channels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gen_channels"], d["critic_channels"] = list(self.gen_channels), \
            list(self.critic_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GanConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CabenchError(f"unknown GAN config keys {unknown}; valid: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> GanConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _pad(kernel: int) -> int:
    return (kernel - 2) // 2  # 'same' for stride 2 and even length: out = 2L or L/2


class _ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of ``(batch, channels, time)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class Generator(nn.Module):
    """``z (batch, latent)`` -> scaled traces ``(batch, n_cells, window)`` in (0, 1)."""

    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.config = c = config
        self.start_len = c.window // 2**c.gen_depth
        self.dense = nn.Linear(c.latent, c.start_channels * self.start_len)
        widths = [c.start_channels, *c.gen_channels, c.n_cells]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose1d(cin, cout, c.kernel, stride=2, padding=_pad(c.kernel)),
                       _ChannelNorm(cout), nn.LeakyReLU(c.slope)]
        self.blocks = nn.Sequential(*layers)
        self.mix = nn.Linear(c.n_cells, c.n_cells)  # the same cell mixing at every frame

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(z).view(z.shape[0], self.config.start_channels, self.start_len)
        x = self.blocks(x)
        return torch.sigmoid(self.mix(x.transpose(1, 2)).transpose(1, 2))


def phase_shuffle(x: torch.Tensor, radius: int, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Shift ``x (batch, channels, time)`` by one random ``k`` in ``[-radius, radius]`` frames
    (the same for the whole batch), filling the gap by reflection; the shape is kept."""
    n = x.shape[-1]
    radius = min(radius, n - 1)
    if radius <= 0:
        return x
    k = int(torch.randint(-radius, radius + 1, (1,), generator=generator))
    if k == 0:
        return x
    if k > 0:  # content moves right by k
        return nn.functional.pad(x, (k, 0), mode="reflect")[..., :n]
    return nn.functional.pad(x, (0, -k), mode="reflect")[..., -k:]


class Critic(nn.Module):
    """Scaled traces ``(batch, n_cells, window)`` -> one score per window ``(batch,)``."""

    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.config = c = config
        widths = [c.n_cells, *c.critic_channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(cin, cout, c.kernel, stride=2, padding=_pad(c.kernel))
            for cin, cout in zip(widths[:-1], widths[1:], strict=True))
        self.act = nn.LeakyReLU(c.slope)
        self.out = nn.Linear(c.critic_channels[-1] * (c.window // 2**c.critic_depth), 1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = self.act(conv(x))
            if i < last and self.config.phase_shuffle > 0:
                x = phase_shuffle(x, self.config.phase_shuffle, generator)
        return self.out(x.flatten(1)).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor, **critic_kwargs: Any) -> torch.Tensor:
    """WGAN-GP penalty ``mean((||grad_x critic(x_hat)||_2 - 1)^2)`` at
    ``x_hat = eps * real + (1 - eps) * fake``, ``eps (batch,)`` in [0, 1]; differentiable
    (``create_graph``), so it can be added to the critic loss."""
    e = eps.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    x_hat = (e * real + (1 - e) * fake).detach().requires_grad_(True)
    score = critic(x_hat, **critic_kwargs)
    (grad,) = torch.autograd.grad(score.float().sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).float().norm(dim=1) - 1) ** 2).mean()


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(config: GanConfig, seed: int) -> tuple[Generator, Critic]:
    """Generator and critic with initial weights drawn from ``seed`` only (torch's default
    initialisers, run under a forked global RNG so that nothing outside changes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(config), Critic(config)
