"""Spike-conditioned CalciumGAN: a conditional WGAN-GP that turns spike trains into dF/F traces.

Tensors are ``(batch, frames)`` per trace; traces inside the networks are dF/F divided by the
run's ``trace_scale`` (stored in its config, see :mod:`cabench.generators.conditional_data`).

Generator (fully convolutional, causal): per frame it sees the spike counts (spikes per frame;
the count of frame ``t + lookahead`` at position ``t``, so a spike can raise the trace at most
``lookahead`` frames early, which absorbs the timing jitter of ground-truth spikes), the same
counts filtered causally by fixed exponential kernels with decay times ``spike_filters``
(frames; a ready-made basis of calcium transients, so the network need not build slow decays
from scratch; truncated at 5 time constants) and ``noise_channels`` white-noise channels; per
trace it sees a latent vector (``latent`` dims, e.g. the cell's brightness), the indicator (a
learned embedding over a fixed vocabulary that includes ``"unknown"``) and the noise level nu
(``log nu``, nu in % Hz^-1/2). A 1x1 convolution lifts the per-frame inputs to ``channels``;
residual blocks (LeakyReLU, causal dilated convolution, the per-trace conditioning added as a
bias, LeakyReLU, 1x1 convolution) follow, with dilations ``dilations``; a 1x1 convolution gives
the scaled trace (linear output). With ``nu_gain > 0`` (every run trained since the noise path
was added) frame-to-frame noise has one way in: the trunk sees the other noise channels only
as slow noise (their values every ``noise_stride`` frames, linearly interpolated), and the last
convolution gives a signal ``m`` and a gain ``g``; the trace is
``m + nu_gain * nu * softplus(g + log(e - 1)) * z`` with ``z`` the first noise channel (white).
So the noise level follows the conditioning nu by construction (it is exactly nu's at the
start, when ``g`` is near 0), and the network learns only where it is larger or smaller (shot
noise grows with brightness). ``nu_gain`` is the per-frame SD of scaled dF/F per unit nu,
``sqrt(frame_rate) / (95.4 * trace_scale)`` for white noise (see
:func:`cabench.noise_level.noise_level_nu`); a run fixes it from its data when it starts.
Receptive field: ``1 + (kernel - 1) * sum(dilations)`` frames
into the past (511 by default: 17 s at 30 Hz). Output length = input length for any length.

Critic: the scaled trace, the spikes and the filtered spikes as channels; strided convolutions
(kernel ``critic_kernel``, stride 2, zero padding, widths ``critic_channels``), each followed by
the conditioning (indicator, nu) added as a bias and LeakyReLU; a 1x1 convolution to one score
per remaining position and the mean over positions: one score per window of any length.
Receptive field ``1 + (critic_kernel - 1) * (2^depth - 1)`` frames (509 by default). Striding
makes it ~10x cheaper than a full-resolution critic, which matters because the gradient penalty
needs a double backward pass through it. With ``nu_gain > 0`` the critic also sees the trace's
frame-to-frame difference divided by ``nu_gain * nu``, so a noise level that does not fit the
conditioning nu is plain to it. No normalisation (WGAN-GP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from cabench.errors import CabenchError
from cabench.indicators import INDICATORS as KNOWN_INDICATORS
from cabench.indicators import UNKNOWN, indicator_key

#: indicator names known to the model (CASCADE ground-truth folders and simulator presets)
INDICATORS: tuple[str, ...] = (UNKNOWN, *KNOWN_INDICATORS)
#: nu (% Hz^-1/2) is clipped to this range before its log enters the networks
NU_RANGE = (0.05, 50.0)
_SOFTPLUS_ONE = float(np.log(np.e - 1))  # softplus(_SOFTPLUS_ONE) = 1


@dataclass(frozen=True)
class ConditionalConfig:
    """Architecture of a spike-conditioned CalciumGAN (see the module docstring)."""

    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    kernel: int = 3
    noise_channels: int = 4
    latent: int = 8
    embed: int = 4
    lookahead: int = 2
    spike_filters: tuple[float, ...] = (2.0, 6.0, 15.0, 30.0, 60.0)
    critic_channels: tuple[int, ...] = (32, 64, 64, 128, 128, 128, 128)
    critic_kernel: int = 5
    slope: float = 0.2
    indicators: tuple[str, ...] = INDICATORS
    nu_gain: float = 0.0
    noise_stride: int = 8

    def __post_init__(self) -> None:
        for name in ("dilations", "critic_channels"):
            object.__setattr__(self, name, tuple(int(d) for d in getattr(self, name)))
        object.__setattr__(self, "indicators", tuple(str(s) for s in self.indicators))
        object.__setattr__(self, "spike_filters", tuple(float(t) for t in self.spike_filters))
        object.__setattr__(self, "nu_gain", float(self.nu_gain))
        object.__setattr__(self, "noise_stride", int(self.noise_stride))
        if any(not t > 0 for t in self.spike_filters):
            raise CabenchError(f"spike_filters must be positive decay times in frames, got "
                               f"{list(self.spike_filters)}")
        for name in ("channels", "embed"):
            if int(getattr(self, name)) < 1:
                raise CabenchError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("noise_channels", "latent", "lookahead"):
            if int(getattr(self, name)) < 0:
                raise CabenchError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("kernel", "critic_kernel"):
            k = getattr(self, name)
            if k < 3 or k % 2 == 0:
                raise CabenchError(f"{name} must be odd and >= 3, got {k}")
        for name in ("dilations", "critic_channels"):
            d = getattr(self, name)
            if not d or min(d) < 1:
                raise CabenchError(f"{name} must be one or more positive integers, got {list(d)}")
        if not (np.isfinite(self.nu_gain) and self.nu_gain >= 0):
            raise CabenchError(f"nu_gain must be a finite number >= 0, got {self.nu_gain}")
        if self.nu_gain and self.noise_channels < 1:
            raise CabenchError("nu_gain needs at least one noise channel")
        if self.noise_stride < 1:
            raise CabenchError(f"noise_stride must be at least 1, got {self.noise_stride}")
        if not 0 <= self.slope < 1:
            raise CabenchError(f"slope must be in [0, 1), got {self.slope}")
        keys = [indicator_key(s) for s in self.indicators]
        if UNKNOWN not in self.indicators or len(set(keys)) != len(keys):
            raise CabenchError("indicators must be distinct names and include 'unknown'")

    @property
    def receptive_field(self) -> int:
        """Frames of spikes (past, plus ``lookahead`` ahead) that one output frame depends on."""
        return 1 + (self.kernel - 1) * sum(self.dilations) + self.lookahead

    @property
    def critic_field(self) -> int:
        """Frames that one position of the critic's last layer sees."""
        return 1 + (self.critic_kernel - 1) * (2 ** len(self.critic_channels) - 1)

    @property
    def n_cond(self) -> int:
        return self.embed + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("dilations", "critic_channels", "indicators", "spike_filters"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConditionalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CabenchError(f"unknown conditional GAN config keys {unknown}; "
                               f"valid: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> ConditionalConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


class _Conditioning(nn.Module):
    """Per-trace conditioning vector: indicator embedding and log nu (and a latent)."""

    def __init__(self, config: ConditionalConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(config.indicators), config.embed)

    def forward(self, indicator: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        lognu = torch.log(nu.float().clamp(*NU_RANGE))[:, None]
        return torch.cat([self.embedding(indicator.long()), lognu], dim=1)


def noise_sd(nu: torch.Tensor, nu_gain: float) -> torch.Tensor:
    """Per-frame noise SD of scaled dF/F ``(batch, 1)`` for nu ``(batch,)`` (% Hz^-1/2)."""
    return (nu_gain * nu.float().clamp(*NU_RANGE))[:, None]


def band_limit_windows(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Windows ``(batch, frames)`` with the frequency bins above ``keep`` ``(batch,)`` removed
    (bin ``k`` is ``k * frame_rate / frames``; ``keep >= frames // 2`` leaves a window as it
    is); the line between a window's first and last frame is removed before the FFT and added
    back, as in :func:`cabench.conditions.band_limit`. Differentiable."""
    n = x.shape[-1]
    if n < 3 or bool((keep >= n // 2).all()):
        return x
    pos = torch.arange(n, device=x.device, dtype=x.dtype) / (n - 1)
    line = x[:, :1] + (x[:, -1:] - x[:, :1]) * pos
    spec = torch.fft.rfft(x - line, dim=-1)
    bins = torch.arange(spec.shape[-1], device=x.device)
    spec = spec * (bins[None, :] <= keep.to(x.device)[:, None])
    return torch.fft.irfft(spec, n, dim=-1) + line


def slow_noise(noise: torch.Tensor, stride: int) -> torch.Tensor:
    """``(batch, channels, frames)`` noise -> its values at frames ``0, stride, 2 stride, ...``
    (the last frame standing in past the end) linearly interpolated between them."""
    n = noise.shape[-1]
    if stride == 1 or n < 2:
        return noise
    knots = -(-(n - 1) // stride) + 1
    idx = (torch.arange(knots, device=noise.device) * stride).clamp(max=n - 1)
    full = nn.functional.interpolate(noise[..., idx], size=(knots - 1) * stride + 1,
                                     mode="linear", align_corners=True)
    return full[..., :n]


class _SpikeBasis(nn.Module):
    """Spike counts ``(batch, frames)`` -> ``(batch, 1 + n_filters, frames)``: the counts and
    their causal exponential filterings (kernel ``exp(-k / tau)``, ``k = 0..5 tau``)."""

    def __init__(self, taus: tuple[float, ...]) -> None:
        super().__init__()
        self.n = len(taus)
        length = max([int(5 * t) + 1 for t in taus], default=1)
        k = torch.arange(length, dtype=torch.float32)
        kern = torch.stack([torch.exp(-k / t) * (k <= 5 * t) for t in taus]) if taus else \
            torch.zeros(0, length)
        self.register_buffer("kernel", kern.flip(-1)[:, None, :], persistent=False)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        s = spikes[:, None, :]
        if not self.n:
            return s
        pad = nn.functional.pad(s, (self.kernel.shape[-1] - 1, 0))
        return torch.cat([s, nn.functional.conv1d(pad, self.kernel.to(s.dtype))], dim=1)


class _Block(nn.Module):
    """Residual block: act -> dilated conv (+ conditioning bias) -> act -> 1x1 conv."""

    def __init__(self, channels: int, kernel: int, dilation: int, n_cond: int, slope: float,
                 causal: bool) -> None:
        super().__init__()
        span = (kernel - 1) * dilation
        self.pad = (span, 0) if causal else (span // 2, span - span // 2)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.cond = nn.Linear(n_cond, channels)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv(nn.functional.pad(self.act(x), self.pad))
        h = self.mix(self.act(h + self.cond(cond)[:, :, None]))
        return x + h


class ConditionalGenerator(nn.Module):
    """``spikes (batch, frames)`` (spikes per frame), indicator ``(batch,)`` (vocabulary
    index), nu ``(batch,)`` (% Hz^-1/2), noise ``(batch, noise_channels, frames)`` and latent
    ``(batch, latent)`` -> scaled dF/F ``(batch, frames)``. Causal up to ``lookahead`` frames."""

    def __init__(self, config: ConditionalConfig) -> None:
        super().__init__()
        self.config = c = config
        self.conditioning = _Conditioning(c)
        n_cond = c.n_cond + c.latent
        self.basis = _SpikeBasis(c.spike_filters)
        n_in = 1 + len(c.spike_filters) + c.noise_channels - (1 if c.nu_gain else 0)
        self.inp = nn.Conv1d(n_in, c.channels, 1)
        self.inp_cond = nn.Linear(n_cond, c.channels)
        self.blocks = nn.ModuleList(_Block(c.channels, c.kernel, d, n_cond, c.slope, True)
                                    for d in c.dilations)
        self.act = nn.LeakyReLU(c.slope)
        self.out = nn.Conv1d(c.channels, 2 if c.nu_gain else 1, 1)

    def forward(self, spikes: torch.Tensor, indicator: torch.Tensor, nu: torch.Tensor,
                noise: torch.Tensor, latent: torch.Tensor, with_signal: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The scaled trace; with ``with_signal`` also its signal ``m`` (the trace without the
        white noise of the noise path; the trace itself when ``nu_gain`` is 0)."""
        la = self.config.lookahead
        s = spikes.float()
        if la:
            s = nn.functional.pad(s[..., la:], (0, min(la, s.shape[-1])))
        s = self.basis(s)
        cond = torch.cat([self.conditioning(indicator, nu), latent.to(s.dtype)], dim=1)
        c = self.config
        noise = noise.to(s.dtype)
        trunk_noise = slow_noise(noise[:, 1:], c.noise_stride) if c.nu_gain else noise
        x = self.inp(torch.cat([s, trunk_noise], dim=1)) + self.inp_cond(cond)[:, :, None]
        for block in self.blocks:
            x = block(x, cond)
        y = self.out(self.act(x))
        signal = y[:, 0, :]
        trace = signal
        if c.nu_gain:
            gain = nn.functional.softplus(y[:, 1, :] + _SOFTPLUS_ONE)
            trace = signal + noise_sd(nu, c.nu_gain) * gain * noise[:, 0, :]
        return (trace, signal) if with_signal else trace


class ConditionalCritic(nn.Module):
    """Scaled traces ``(batch, frames)`` given spikes ``(batch, frames)``, indicator and nu
    ``(batch,)`` -> one score per window ``(batch,)`` (mean of per-frame scores)."""

    def __init__(self, config: ConditionalConfig) -> None:
        super().__init__()
        self.config = c = config
        self.conditioning = _Conditioning(c)
        self.basis = _SpikeBasis(c.spike_filters)
        widths = [2 + len(c.spike_filters) + (1 if c.nu_gain else 0), *c.critic_channels]
        k = c.critic_kernel
        self.convs = nn.ModuleList(nn.Conv1d(a, b, k, stride=2, padding=k // 2)
                                   for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.conds = nn.ModuleList(nn.Linear(c.n_cond, b) for b in c.critic_channels)
        self.act = nn.LeakyReLU(c.slope)
        self.out = nn.Conv1d(c.critic_channels[-1], 1, 1)

    def forward(self, trace: torch.Tensor, spikes: torch.Tensor, indicator: torch.Tensor,
                nu: torch.Tensor) -> torch.Tensor:
        c = self.config
        cond = self.conditioning(indicator, nu)
        x = torch.cat([trace[:, None, :], self.basis(spikes.to(trace.dtype))], dim=1)
        if c.nu_gain:
            diff = nn.functional.pad(trace.diff(dim=-1), (1, 0)) / noise_sd(nu, c.nu_gain)
            x = torch.cat([x, diff[:, None, :].to(trace.dtype)], dim=1)
        for conv, lin in zip(self.convs, self.conds, strict=True):
            x = self.act(conv(x) + lin(cond)[:, :, None])
        return self.out(x).mean(dim=(1, 2))


def build_conditional(config: ConditionalConfig, seed: int
                      ) -> tuple[ConditionalGenerator, ConditionalCritic]:
    """Generator and critic with initial weights drawn from ``seed`` only (torch's default
    initialisers under a forked global RNG, so nothing outside changes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConditionalGenerator(config), ConditionalCritic(config)
