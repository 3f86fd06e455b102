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

Noise comes from a counter-based generator (SplitMix64 hash + ziggurat) keyed per (trial,
cell): the value at each frame depends only on the key and the frame index, so results are
identical whatever the chunking or number of threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
NU_SAMPLE = 4000  # frame differences used to calibrate sigma from a target nu (~1.7 % SD)


def ar_coefficients(decay_s: float, rise_s: float, frame_rate: float) -> tuple[float, ...]:
    """AR coefficients of the sampled kernel, oasis convention ``g = exp(-1 / (tau * fr))``.

    Returns ``(g,)`` for AR(1) (rise 0) and ``(g_d + g_r, -g_d * g_r)`` for AR(2).
    """
    gd = float(np.exp(-1.0 / (decay_s * frame_rate)))
    if rise_s <= 0:
        return (gd,)
    gr = float(np.exp(-1.0 / (rise_s * frame_rate)))
    return (gd + gr, -gd * gr)


@nb.njit(cache=True)
def kernel_peak(decay_s: float, rise_s: float) -> float:
    """Peak of ``exp(-t/decay) - exp(-t/rise)`` (1 when rise is 0); rise < decay."""
    if rise_s <= 0:
        return 1.0
    t_peak = decay_s * rise_s / (decay_s - rise_s) * np.log(decay_s / rise_s)
    return np.exp(-t_peak / decay_s) - np.exp(-t_peak / rise_s)


@nb.njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _ziggurat_table(n_layers: int = 256, r: float = 3.6541528853610088,
                    v: float = 4.92867323399e-3) -> np.ndarray:
    """Layer edges x[0..n] of the ziggurat for exp(-x^2/2) (Marsaglia & Tsang 2000).

    x[0] = v / f(r) is the base strip's virtual width, x[1] = r, x[n] = 0; every layer has area v.
    """
    x = np.empty(n_layers + 1)
    x[0], x[1] = v / np.exp(-0.5 * r * r), r
    for i in range(1, n_layers):
        y = v / x[i] + np.exp(-0.5 * x[i] ** 2)
        x[i + 1] = np.sqrt(-2.0 * np.log(y)) if y < 1.0 else 0.0
    x[n_layers] = 0.0
    return x


_ZX = _ziggurat_table()
_ZF = np.exp(-0.5 * _ZX**2)
_ZR = float(_ZX[1])
_INV53 = 1.0 / 9007199254740992.0


@nb.njit(inline="always")
def _unit(z):
    """Uniform in (0, 1) from the top 53 bits of a 64-bit hash."""
    return (np.float64(z >> np.uint64(11)) + 0.5) * _INV53


@nb.njit(cache=True)
def _normal_at(key, k):
    """Standard normal (float32) at counter ``k`` of stream ``key``: a SplitMix64 hash of the
    counter feeds a 256-layer ziggurat; its rare rejections rehash the state."""
    z = _mix64(key + np.uint64(k) * _GOLDEN)
    while True:
        i = int(z & np.uint64(0xFF))
        neg = (z >> np.uint64(8)) & np.uint64(1)
        x = (np.float64(z >> np.uint64(11)) * _INV53) * _ZX[i]
        if x < _ZX[i + 1]:  # inside the layer's rectangle: ~99 % of draws
            return np.float32(-x if neg else x)
        z = _mix64(z + _GOLDEN)
        if i == 0:  # tail beyond r (Marsaglia 1964)
            while True:
                a = -np.log(_unit(z)) / _ZR
                z = _mix64(z + _GOLDEN)
                b = -np.log(_unit(z))
                z = _mix64(z + _GOLDEN)
                if 2.0 * b > a * a:
                    return np.float32(-(_ZR + a) if neg else _ZR + a)
        if _ZF[i] + _unit(z) * (_ZF[i + 1] - _ZF[i]) < np.exp(-0.5 * x * x):  # wedge
            return np.float32(-x if neg else x)
        z = _mix64(z + _GOLDEN)


@nb.njit(parallel=True, fastmath=True, cache=True)
def render_calcium(out, times, weights, offsets, frame_rate, decay, rise, subframe, amplitude,
                   hill, saturation):
    """Noiseless dF/F into ``out`` (rows, frames) float32 from ragged spike times (s).

    Row ``i`` has spikes ``times[offsets[i]:offsets[i + 1]]`` (sorted) with amplitude factors
    ``weights``; ``amplitude[i]`` is the row's single-spike peak dF/F. A spike at ``t`` first
    shows in frame ``k = ceil(t * frame_rate)``; with ``subframe`` its decay and rise inputs are
    ``w * exp(-(k / frame_rate - t) / tau)``, otherwise ``w``. Spikes after the last frame are
    ignored.
    """
    n, n_frames = out.shape
    gd = np.float32(np.exp(-1.0 / (decay * frame_rate)))
    gr = np.float32(np.exp(-1.0 / (rise * frame_rate))) if rise > 0 else np.float32(0.0)
    inv_peak = np.float32(1.0 / kernel_peak(decay, rise))
    sat1 = np.float32(1.0 + saturation)
    linear = hill == 1.0 and saturation == 0.0
    for i in prange(n):
        d = np.float32(0.0)
        r = np.float32(0.0)
        p = offsets[i]
        end = offsets[i + 1]
        a = np.float32(amplitude[i])
        nxt = n_frames
        if p < end:
            nxt = int(np.ceil(times[p] * frame_rate - 1e-9))
        for k in range(n_frames):
            d *= gd
            r *= gr
            while nxt == k:
                lag = (k / frame_rate - times[p]) if subframe else 0.0
                d += weights[p] * np.exp(-lag / decay)
                if rise > 0:
                    r += weights[p] * np.exp(-lag / rise)
                p += 1
                nxt = int(np.ceil(times[p] * frame_rate - 1e-9)) if p < end else n_frames
            c = (d - r) * inv_peak
            if linear:
                out[i, k] = a * c
            elif c > 0:
                ch = c**hill
                out[i, k] = a * sat1 * ch / (np.float32(1.0) + saturation * ch)
            else:
                out[i, k] = np.float32(0.0)


@nb.njit(parallel=True, cache=True)
def standard_normals(keys, n_frames):
    """Standard normal float32 ``(len(keys), n_frames)`` from the counter-based generator."""
    out = np.empty((keys.size, n_frames), np.float32)
    for i in prange(keys.size):
        for k in range(n_frames):
            out[i, k] = _normal_at(keys[i], k)
    return out


@nb.njit(parallel=True, fastmath=True, cache=True)
def add_noise(out, keys, sigma, shot_fraction):
    """Add noise in place to dF/F ``out`` (rows, frames): sd ``sigma[row]`` at baseline.

    Variance ``sigma**2 * ((1 - f) + f * (1 + dF/F))``, clipped at zero brightness.
    """
    n, n_frames = out.shape
    f = np.float32(shot_fraction)
    for i in prange(n):
        key = keys[i]
        s = np.float32(sigma[i])
        for k in range(n_frames):
            v = np.float32(1.0) + f * out[i, k]
            out[i, k] += s * np.sqrt(max(v, np.float32(0.0))) * _normal_at(key, k)


@nb.njit(parallel=True, fastmath=False, cache=True)
def sigma_for_nu(clean, keys, target_nu, frame_rate, shot_fraction, n_sample):
    """Baseline noise sd per row so that the noisy trace's nu equals ``target_nu``.

    nu = 100 * median(|dF/F(t+1) - dF/F(t)|) / sqrt(frame_rate) (CASCADE, % Hz^-1/2), measured
    on up to ``n_sample`` evenly spaced frame differences of the noisy trace with exactly the noise
    that :func:`add_noise` will add; solved by a fixed-point iteration on sigma. Rows whose
    signal alone changes more per frame than the target allows get -1.
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
        reached = abs(np.median(np.abs(dc + sig * dz)) - target) <= 0.02 * target
        out[i] = sig if reached else -1.0
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
