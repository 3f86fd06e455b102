"""Calcium and indicator models: spikes -> noiseless dF/F -> noisy dF/F.

Model, per cell (frame ``k`` sampled at ``t_k = k / frame_rate``):

* Calcium in units of a single spike's peak: a sum over spikes of the continuous kernel
  ``h(t) = (exp(-t / decay) - exp(-t / rise)) / peak`` (``h = exp(-t / decay)`` when rise is 0),
  sampled at the frame times, so sub-frame spike timing is kept exactly. Sampled, the kernel is the
  AR(2) process ``c_k = g1 c_{k-1} + g2 c_{k-2} + s_k`` with the coefficients that oasis uses
  (:func:`ar_coefficients`); each spike scales by its own amplitude factor.
* Indicator nonlinearity, normalised so one isolated spike peaks at ``amplitude``:
  ``dF/F = amplitude * (1 + saturation) * c**hill / (1 + saturation * c**hill)``.
* Baseline drift and neuropil contamination are added to the noiseless dF/F.
* Noise: Gaussian with standard deviation ``sigma`` at baseline, or Poisson-Gaussian (shot) noise
  whose variance grows with brightness, ``sigma**2 * ((1 - f) + f * (1 + dF/F))`` with shot
  fraction ``f``. ``sigma`` may instead be solved per trace so that the CASCADE noise level
  ``nu`` of the noisy output hits a target exactly (up to sampling of the median).

Noise comes from a counter-based generator (SplitMix64 + Box-Muller) keyed per (trial, cell): the
value at each frame depends only on the key and the frame index, so results are identical
whatever the chunking or number of threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_INV24 = np.float32(1.0 / 16777216.0)
_TWO_PI = np.float32(2.0 * np.pi)
_PAIR_BLOCK = 512  # pairs of normals generated per inner block (1,024 frames)
NU_SAMPLE = 20000  # frame differences used to calibrate sigma from a target nu


def ar_coefficients(decay_s: float, rise_s: float, frame_rate: float) -> tuple[float, ...]:
    """AR coefficients of the sampled kernel, oasis convention ``g = exp(-1 / (tau * fr))``.

    Returns ``(g,)`` for AR(1) (rise 0) and ``(g_d + g_r, -g_d * g_r)`` for AR(2).
    """
    gd = float(np.exp(-1.0 / (decay_s * frame_rate)))
    if rise_s <= 0:
        return (gd,)
    gr = float(np.exp(-1.0 / (rise_s * frame_rate)))
    return (gd + gr, -gd * gr)


def kernel_peak(decay_s: float, rise_s: float) -> float:
    """Peak of ``exp(-t/decay) - exp(-t/rise)`` (1 when rise is 0)."""
    if rise_s <= 0:
        return 1.0
    if abs(decay_s - rise_s) < 1e-12:
        raise ValueError("rise and decay time constants must differ")
    t_peak = decay_s * rise_s / (decay_s - rise_s) * np.log(decay_s / rise_s)
    return float(np.exp(-t_peak / decay_s) - np.exp(-t_peak / rise_s))


def spike_inputs(
    times: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray,
    frame_rate: float,
    n_frames: int,
    decay_s: float,
    rise_s: float,
    subframe: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-spike frame index and decay/rise input weights for :func:`render_calcium`.

    A spike at ``t`` first shows in frame ``k = ceil(t * fr)``; with sub-frame timing its inputs
    are ``w * exp(-(t_k - t) / tau)``, without it the spike sits on that frame (input ``w``).
    Spikes at or after the last frame's time are dropped. Returns ``(frame, wd, wr, offsets)``.
    """
    pos = np.asarray(times, np.float64) * frame_rate
    frame = np.ceil(pos - 1e-9).astype(np.int64)
    keep = frame < n_frames
    lag = np.where(subframe, (frame - pos) / frame_rate, 0.0)
    wd = weights * np.exp(-lag / decay_s)
    wr = weights * np.exp(-lag / rise_s) if rise_s > 0 else np.zeros_like(wd)
    if not keep.all():
        cell = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))[keep]
        offsets = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=len(offsets) - 1))])
        frame, wd, wr = frame[keep], wd[keep], wr[keep]
    return frame, wd.astype(np.float32), wr.astype(np.float32), offsets.astype(np.int64)


@nb.njit(parallel=True, fastmath=True, cache=True)
def render_calcium(out, frame, wd, wr, offsets, gd, gr, peak, amplitude, hill, saturation):
    """Noiseless dF/F into ``out`` (rows, frames) float32; ``amplitude`` per row (dF/F)."""
    n, n_frames = out.shape
    inv_peak = np.float32(1.0 / peak)
    sat1 = np.float32(1.0 + saturation)
    linear = hill == 1.0 and saturation == 0.0
    for i in prange(n):
        d = np.float32(0.0)
        r = np.float32(0.0)
        p = offsets[i]
        end = offsets[i + 1]
        nxt = frame[p] if p < end else n_frames
        a = np.float32(amplitude[i])
        for k in range(n_frames):
            d *= gd
            r *= gr
            while nxt == k:
                d += wd[p]
                r += wr[p]
                p += 1
                nxt = frame[p] if p < end else n_frames
            c = (d - r) * inv_peak
            if linear:
                out[i, k] = a * c
            elif c > 0:
                ch = c**hill
                out[i, k] = a * sat1 * ch / (np.float32(1.0) + saturation * ch)
            else:
                out[i, k] = np.float32(0.0)


@nb.njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def _normal_pair(key, j):
    z = _mix64(key + np.uint64(j) * _GOLDEN)
    u1 = (np.float32(z >> np.uint64(40)) + np.float32(0.5)) * _INV24
    u2 = np.float32(z & np.uint64(0xFFFFFF)) * _INV24
    rad = np.sqrt(np.float32(-2.0) * np.log(u1))
    th = _TWO_PI * u2
    return rad * np.cos(th), rad * np.sin(th)


@nb.njit(fastmath=True)
def _normal_at(key, k):
    a, b = _normal_pair(key, k // 2)
    return a if k % 2 == 0 else b


@nb.njit(parallel=True, fastmath=True, cache=True)
def standard_normals(keys, n_frames):
    """Standard normal float32 ``(len(keys), n_frames)`` from the counter-based generator."""
    out = np.empty((keys.size, n_frames), np.float32)
    for i in prange(keys.size):
        for j in range((n_frames + 1) // 2):
            a, b = _normal_pair(keys[i], j)
            out[i, 2 * j] = a
            if 2 * j + 1 < n_frames:
                out[i, 2 * j + 1] = b
    return out


@nb.njit(parallel=True, fastmath=True, cache=True)
def add_noise(out, keys, sigma, shot_fraction):
    """Add noise in place to dF/F ``out`` (rows, frames): sd ``sigma[row]`` at baseline.

    Variance ``sigma**2 * ((1 - f) + f * (1 + dF/F))``, clipped at zero brightness.
    """
    n, n_frames = out.shape
    half = _PAIR_BLOCK
    f = np.float32(shot_fraction)
    for i in prange(n):
        buf = np.empty(2 * half, np.float32)
        key = keys[i]
        s = np.float32(sigma[i])
        for k0 in range(0, n_frames, 2 * half):
            j0 = k0 // 2
            for j in range(half):
                a, b = _normal_pair(key, j0 + j)
                buf[2 * j] = a
                buf[2 * j + 1] = b
            m = min(2 * half, n_frames - k0)
            if f == 0:
                for j in range(m):
                    out[i, k0 + j] += s * buf[j]
            else:
                for j in range(m):
                    v = np.float32(1.0) + f * out[i, k0 + j]
                    v = v if v > 0 else np.float32(0.0)
                    out[i, k0 + j] += s * np.sqrt(v) * buf[j]


@nb.njit(parallel=True, fastmath=False, cache=True)
def sigma_for_nu(clean, keys, target_nu, frame_rate, shot_fraction, n_sample):
    """Baseline noise sd per row so that the noisy trace's nu equals ``target_nu``.

    nu = 100 * median(|dF/F(t+1) - dF/F(t)|) / sqrt(frame_rate) (CASCADE, % Hz^-1/2), measured
    on up to ``n_sample`` evenly spaced frame differences of the noisy trace with exactly the noise
    that :func:`add_noise` will add; solved by a fixed-point iteration on sigma.
    """
    n, n_frames = clean.shape
    out = np.empty(n, np.float64)
    m = min(n_sample, n_frames - 1)
    step = (n_frames - 1) / m
    target = target_nu * np.sqrt(frame_rate) / 100.0
    f = shot_fraction
    for i in prange(n):
        dc = np.empty(m)
        dz = np.empty(m)
        for j in range(m):
            k = int(j * step)
            c0 = clean[i, k]
            c1 = clean[i, k + 1]
            s0 = np.sqrt(max(1.0 - f + f * (1.0 + c0), 0.0))
            s1 = np.sqrt(max(1.0 - f + f * (1.0 + c1), 0.0))
            dc[j] = c1 - c0
            dz[j] = s1 * _normal_at(keys[i], k + 1) - s0 * _normal_at(keys[i], k)
        sig = target / 0.9538725524732674  # white-noise start: median|dz| = sqrt(2) * 0.6745
        for _ in range(30):
            cur = np.median(np.abs(dc + sig * dz))
            if cur <= 0:
                break
            new = sig * target / cur
            if abs(new - sig) <= 1e-7 * sig:
                sig = new
                break
            sig = new
        out[i] = max(sig, 0.0)
    return out


def noise_keys(seed_key: int, trials: np.ndarray, cells: np.ndarray, n_cells: int) -> np.ndarray:
    """uint64 noise keys for rows ``(trial, cell)``; depend only on the seed and global indices."""
    idx = trials.astype(np.uint64) * np.uint64(n_cells) + cells.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed_key) + (idx + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def ou_process(n_rows: int, n_frames: int, frame_rate: float, timescale_s: float, sd: float,
               rng: np.random.Generator) -> np.ndarray:
    """Slow stationary Ornstein-Uhlenbeck fluctuations (rows, frames) float32 with sd ``sd``.

    Drawn on a coarse grid (10 points per timescale) and linearly interpolated to the frames, so
    the cost is independent of the frame rate.
    """
    dt = timescale_s / 10.0
    n_grid = int(np.ceil(n_frames / frame_rate / dt)) + 2
    a = np.exp(-dt / timescale_s)
    z = rng.standard_normal((n_rows, n_grid))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0]
    from scipy.signal import lfilter

    x[:, 1:] = lfilter([np.sqrt(1 - a * a)], [1, -a], z[:, 1:], axis=1, zi=a * x[:, :1])[0]
    t = np.arange(n_frames) / frame_rate / dt
    i0 = np.minimum(t.astype(np.int64), n_grid - 2)
    w = (t - i0).astype(np.float32)
    x = x.astype(np.float32)
    return sd * (x[:, i0] * (1 - w) + x[:, i0 + 1] * w)
