"""The ``cnn`` network (PyTorch), its exact sliding evaluation over whole traces, and ensembles.

:class:`CascadeNet` maps a window of ``recipe.window`` dF/F frames to the expected number of
spikes in the window's frame ``recipe.before`` (the target frame; training and prediction use
the same index). Layers (no padding, ReLU after each but the last)::

    conv(f1, k1) -> [FiLM] -> conv(f2, k2) -> [FiLM] -> max-pool 2 -> conv(f3, k3) -> [FiLM]
    -> max-pool 2 -> dense(d) on each remaining time step -> flatten -> dense(1)

The per-step dense layer is a 1x1 convolution and flatten + dense(1) a convolution whose kernel
spans the remaining steps, so the same weights also evaluate *every* window of a long trace in
one pass (:meth:`CascadeNet.sliding`): pooling with stride 1 and the later layers dilated by 2
and 4 ("shift and stitch"). The result equals the window-by-window output (up to float rounding)
at about 1/13 of the cost (34 k instead of 440 k multiply-adds per frame), because neighbouring
windows share their convolutions. Training uses it too, on segments of consecutive target
frames (``recipe.segment``).

FiLM (``recipe.noise_conditioning``): a small network maps log nu (and, with
``recipe.indicator_conditioning``, the one-hot indicator family) to a scale ``1 + g`` and a
shift ``b`` per channel of each convolution; its output layer starts at zero, so an untrained
conditioned network starts as the plain one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cabench.benchmark.learned.inputs import model_inputs
from cabench.benchmark.learned.recipe import Recipe


class FiLM(nn.Module):
    """(log nu, one-hot family) -> per-channel (scale, shift) for each convolution layer."""

    def __init__(self, channels: tuple[int, ...], hidden: int, families: int = 0) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.families = families
        self.hidden = nn.Linear(1 + families, hidden)
        self.out = nn.Linear(hidden, 2 * sum(channels))

    def forward(self, nu: torch.Tensor, family: torch.Tensor | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``nu`` ``(B,)`` and ``family`` ``(B,)`` (indices, None: all 0, i.e. unknown) -> per
        layer ``(scale, shift)``, each ``(B, channels, 1)``."""
        z = torch.log(nu.clamp_min(1e-3))[:, None]
        if self.families:
            if family is None:
                family = torch.zeros(nu.shape, dtype=torch.long, device=nu.device)
            z = torch.cat([z, F.one_hot(family.long(), self.families).to(z.dtype)], dim=1)
        h = torch.tanh(self.hidden(z))
        p = self.out(h)
        out, i = [], 0
        for c in self.channels:  # scale 1 + g, shift b
            out.append((1.0 + p[:, i : i + c, None], p[:, i + c : i + 2 * c, None]))
            i += 2 * c
        return out


class CascadeNet(nn.Module):
    """One network of the recipe's architecture (see the module docstring)."""

    def __init__(self, recipe: Recipe) -> None:
        super().__init__()
        (f1, f2, f3), (k1, k2, k3) = recipe.filters, recipe.kernels
        self.conv1 = nn.Conv1d(recipe.channels, f1, k1)
        self.conv2 = nn.Conv1d(f1, f2, k2)
        self.conv3 = nn.Conv1d(f2, f3, k3)
        self.dense = nn.Conv1d(f3, recipe.dense, 1)  # dense(d) on each time step
        self.out = nn.Conv1d(recipe.dense, 1, recipe.steps)  # flatten -> dense(1)
        self.film = FiLM((f1, f2, f3), recipe.film_hidden, recipe.condition_size - 1) \
            if recipe.noise_conditioning else None
        self.window = recipe.window
        self.receptive_field = recipe.receptive_field

    def _film(self, nu: torch.Tensor | None, family: torch.Tensor | None,
              like: torch.Tensor) -> list:
        if self.film is None:
            return [(None, None)] * 3
        if nu is None:
            raise ValueError("a noise-conditioned network needs nu")
        if family is not None:
            family = family.to(like.device)
        return self.film(nu.to(device=like.device, dtype=torch.float32), family)

    def forward(self, windows: torch.Tensor, nu: torch.Tensor | None = None,
                family: torch.Tensor | None = None) -> torch.Tensor:
        """Expected spikes in the target frame of each window: ``(B, window)`` (one input
        channel) or ``(B, channels, window)`` -> ``(B,)``; ``nu`` and ``family`` (index into
        ``recipe.families``) per window, for FiLM."""
        film = self._film(nu, family, windows)
        h = _act(self.conv1(windows if windows.dim() == 3 else windows[:, None, :]), film[0])
        h = F.max_pool1d(_act(self.conv2(h), film[1]), 2)
        h = F.max_pool1d(_act(self.conv3(h), film[2]), 2)
        h = F.relu(self.dense(h))
        return self.out(h)[:, 0, 0]

    def sliding(self, x: torch.Tensor, nu: torch.Tensor | None = None,
                family: torch.Tensor | None = None) -> torch.Tensor:
        """Every window of ``x`` ``(B, L)`` or ``(B, channels, L)`` at once:
        ``(B, L - receptive_field + 1)``; output ``j`` is :meth:`forward` of the window starting
        at frame ``j``.

        Pooling with stride 1 and dilated later layers; run as 2-D convolutions of height 1 in
        channels-last layout, which oneDNN executes 2-3 times faster on CPUs than the 1-D ones.
        """
        film = [(None, None) if s is None else (s[..., None], b[..., None])
                for s, b in self._film(nu, family, x)]

        def conv(layer: nn.Conv1d, h: torch.Tensor, dilation: int = 1) -> torch.Tensor:
            w = layer.weight[:, :, None, :].contiguous(memory_format=torch.channels_last)
            return F.conv2d(h, w, layer.bias, dilation=(1, dilation))

        # (B, C, 1, L) with channels-last strides, so that every layer's output is channels-last
        if x.dim() == 2:
            x = x[:, None, :]
        b, c, n = x.shape
        x = x.transpose(1, 2).contiguous().as_strided((b, c, 1, n), (n * c, 1, n * c, c))
        h = _act(conv(self.conv1, x), film[0], inplace=True)
        h = _act(conv(self.conv2, h), film[1], inplace=True)
        h = torch.maximum(h[..., :-1], h[..., 1:])  # max-pool 2, stride 1
        h = _act(conv(self.conv3, h, 2), film[2], inplace=True)
        h = torch.maximum(h[..., :-2], h[..., 2:])  # max-pool 2 of every other step
        h = F.relu_(conv(self.dense, h))
        return conv(self.out, h, 4)[:, 0, 0, :]


def _act(h: torch.Tensor, film: tuple, inplace: bool = False) -> torch.Tensor:
    """ReLU after an optional FiLM; ``inplace`` saves a copy of ``h`` (autograd allows it: a
    convolution's backward pass does not need its output)."""
    scale, shift = film
    if scale is not None:
        if inplace and not torch.is_grad_enabled():
            h = torch.addcmul(shift, h, scale, out=h)
        else:
            h = torch.addcmul(shift, h, scale)
    return F.relu_(h) if inplace else F.relu(h)


def init_weights(net: nn.Module, generator: torch.Generator) -> None:
    """Glorot-uniform weights, zero biases (Keras's defaults), drawn from ``generator``; the
    FiLM output layer starts at zero (identity FiLM)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias") or name.startswith("film.out"):
                p.zero_()
                continue
            receptive = p[0, 0].numel() if p.dim() > 2 else 1
            fan_in, fan_out = p.shape[1] * receptive, p.shape[0] * receptive
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * limit)


class CnnModel(nn.Module):
    """A trained model: ``groups[i]`` is the ensemble for ``recipe.groups[i]`` (one per noise
    level, or one conditioned ensemble), each a list of ``ensemble_size`` networks."""

    def __init__(self, recipe: Recipe) -> None:
        super().__init__()
        self.recipe = recipe
        self.groups = nn.ModuleList(
            nn.ModuleList(CascadeNet(recipe) for _ in range(recipe.ensemble_size))
            for _ in recipe.groups
        )

    def group_of(self, nu: np.ndarray) -> np.ndarray:
        """Index of the ensemble for each noise level: the nearest trained level (ties to the
        lower one), or 0 for a conditioned model."""
        nu = np.asarray(nu, dtype=np.float64)
        if self.recipe.noise_conditioning:
            return np.zeros(nu.shape, np.int64)
        levels = np.asarray(self.recipe.noise_levels)
        return np.argmin(np.abs(nu[..., None] - levels), axis=-1)

    @torch.inference_mode()
    def predict(
        self,
        rows: list[np.ndarray],
        nu: np.ndarray,
        family: np.ndarray | None = None,
        device: torch.device | str = "cpu",
        batch_frames: int = 32768,
        piece: int = 4096,
        progress: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Expected spikes per frame (at the model's rate, before clipping) of each 1-D row.

        ``rows``: finite float dF/F traces at ``recipe.frame_rate``; ``nu``: their noise levels
        (picks the ensemble, or conditions the networks, clipped to the trained range);
        ``family``: each row's index into ``recipe.families`` (None: all unknown). Rows
        are cut into pieces of equal length, at most ``piece`` target frames (the longest row
        in as few as possible), each with the window's context (edge values beyond the ends),
        and ``batch_frames`` target frames go through each forward pass, so memory is bounded
        whatever the number and length of rows. The ensemble mean is returned. With
        ``recipe.inputs`` other than ``dff`` each whole row is first turned into its input
        channels (:func:`~cabench.benchmark.learned.inputs.model_inputs`).
        """
        r = self.recipe
        dev = torch.device(device)
        self.to(dev).eval()
        nu = np.clip(np.asarray(nu, np.float64), min(r.noise_levels), max(r.noise_levels))
        group = self.group_of(nu)
        family = np.zeros(len(rows), np.int64) if family is None else np.asarray(family)
        lengths = np.array([len(y) for y in rows])
        out = [np.zeros(n, np.float32) for n in lengths]
        if not len(rows):
            return out
        longest = int(lengths.max())
        c = math.ceil(longest / math.ceil(longest / piece))  # equal pieces of <= piece frames
        span = c + r.window - 1
        per_batch = max(1, batch_frames // c)
        offsets = np.arange(span) - r.before
        inputs = [model_inputs(y, r.inputs) for y in rows]
        for g, nets in enumerate(self.groups):
            jobs = [(i, s) for i in np.flatnonzero(group == g) for s in range(0, lengths[i], c)]
            for b in range(0, len(jobs), per_batch):
                batch = jobs[b : b + per_batch]
                x = np.stack([inputs[i][..., np.clip(s + offsets, 0, lengths[i] - 1)]
                              for i, s in batch]).astype(np.float32)
                xt = torch.from_numpy(x).to(dev)
                nut = torch.tensor([nu[i] for i, _ in batch], dtype=torch.float32, device=dev)
                fam = torch.tensor([family[i] for i, _ in batch], dtype=torch.long, device=dev)
                acc = None
                for net in nets:
                    y = net.sliding(xt, nut, fam)[:, :c]
                    acc = y if acc is None else acc + y
                est = (acc / len(nets)).float().cpu().numpy()
                for (i, s), e in zip(batch, est, strict=True):
                    n = min(c, lengths[i] - s)
                    out[i][s : s + n] = e[:n]
                if progress is not None:
                    progress(sum(min(c, lengths[i] - s) for i, s in batch))
        return out
