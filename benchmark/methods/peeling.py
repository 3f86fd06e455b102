"""``peeling``: template subtraction after Grewe et al. 2010 (our own implementation).

The trace minus its baseline (the lower of a sigma-clipped mean and a low percentile of the
trace smoothed over half a decay time, :mod:`.tools`) is the residual. Candidate spikes sit at
``subframe`` positions per frame, ``t = (k + delta) / frame_rate`` with ``delta`` in
``{-1/2, -1/2 + 1/subframe, ...}``, all inside frame ``k``'s interval ``[k - 1/2, k + 1/2)``.
Each position has a template: the double-exponential response of one spike (peak
``amplitude``, time constants ``decay_s`` and ``rise_s``) sampled at the frames, cut where it
falls below 1 % of its peak and at the end of the trace. Then, repeatedly:

1. for every position compute ``<r, T>`` (residual ``r``, template ``T``); the candidate
   positions are the significant ones, ``<r, T> / (sd * |T|) >= threshold`` (a matched-filter
   signal-to-noise ratio, ``sd`` the noise SD of the trace);
2. take the candidate whose subtraction of one fixed-size spike lowers the squared residual
   most, ``2 <r, T> - |T|^2`` (the largest residual transient); stop when no subtraction
   lowers it (a fitted amplitude under half a spike);
3. subtract the template there and update ``<r, T>`` of the neighbouring positions.

Bursts are peeled one spike at a time. Output: the spike times (s) and their counts per frame
(expected spikes per frame, integers here). The inner loop is compiled with numba and updates
only the ``2L`` positions around each subtracted spike, with block maxima for the search.
"""

from __future__ import annotations

import math

import numpy as np

from cabench.benchmark.methods.base import Method, Param
from cabench.benchmark.methods.tools import (
    IndicatorDefaults,
    baseline,
    double_exponential,
    floor_baseline,
    indicator_params,
    noise_sd,
)

_BLOCK = 64  # positions per block of the running maximum


class Peeling(IndicatorDefaults, Method):
    """Peeling: iterative subtraction of a fixed single-spike template (Grewe et al. 2010).

    Parameters default to the ``indicator`` preset (GCaMP6f: 0.12 dF/F, 0.214 s decay, 0.02 s
    rise). Output in expected spikes per frame: the number of peeled spikes in each frame's
    interval; spike times (s) at sub-frame resolution.
    """

    name = "peeling"
    description = (
        "Peeling (Grewe et al. 2010): iteratively subtract a fixed single-spike template at "
        "the largest residual transient"
    )
    params = {
        **indicator_params("amplitude", "decay_s", "rise_s"),
        "threshold": Param(
            float, 2.5, "detection threshold: matched-filter signal-to-noise ratio of a "
            "candidate spike", unit="noise SD", minimum=0,
        ),
        "subframe": Param(
            int, 4, "candidate spike times per frame interval", unit="per frame", minimum=1,
            maximum=16,
        ),
    }
    min_frames = 8
    indicator_fields = ("amplitude", "decay_s", "rise_s")

    def templates(self, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Sub-frame offsets (frames) and templates ``(subframe, L)`` in dF/F at the frames."""
        p = self.resolved_params()
        q = p["subframe"]
        offsets = -0.5 + np.arange(q) / q if q > 1 else np.zeros(1)
        decay_frames = p["decay_s"] * frame_rate
        length = int(math.ceil(decay_frames * math.log(100.0) + p["rise_s"] * frame_rate)) + 2
        j = np.arange(length)
        t = (j[None, :] - offsets[:, None]) / frame_rate
        tmpl = p["amplitude"] * double_exponential(t, p["decay_s"], p["rise_s"])
        return offsets, tmpl

    def _prepare(self, frame_rate: float) -> None:
        self._offsets, self._tmpl = self.templates(frame_rate)
        self._threshold = self.parameters["threshold"]
        self._smooth = 0.5 * self.resolved_params()["decay_s"] * frame_rate  # frames

    def _infer_row(self, y: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
        from scipy.signal import oaconvolve

        n = y.size
        tmpl = self._tmpl[:, : min(self._tmpl.shape[1], n)]
        q, length = tmpl.shape
        sd = noise_sd(y)
        # the lower of a sigma-clipped mean and a smoothed floor: active cells with slow
        # indicators rarely return to rest, which lifts the clipped mean
        r = y - min(baseline(y, sd), floor_baseline(y, sd, self._smooth))
        # <r, T> at every position; windows that run past the end are cut, as are templates
        padded = np.concatenate((r, np.zeros(length - 1)))
        num = np.empty((q, n))
        for d in range(q):
            num[d] = oaconvolve(padded, tmpl[d, ::-1], mode="valid")
        # |T|^2 of templates cut to m samples, m = 0..length
        cut_norm2 = np.concatenate((np.zeros((q, 1)), np.cumsum(tmpl * tmpl, axis=1)), axis=1)
        # cross products of templates at relative lags -(L-1)..(L-1): X[d, e, lag + L - 1]
        cross = np.zeros((q, q, 2 * length - 1))
        for d in range(q):
            for e in range(q):
                cross[d, e] = np.correlate(tmpl[e], tmpl[d], mode="full")
        sd_eff = max(sd, 1e-12 * max(1.0, float(np.abs(r).max())))
        frames, which = _peel(
            r, num, tmpl, cut_norm2, cross, sd_eff, float(self._threshold), 4 * n + 16
        )
        times = (frames + self._offsets[which]) / frame_rate
        counts = np.bincount(frames, minlength=n).astype(np.float64)
        return counts, times


def _peel(r, num, tmpl, cut_norm2, cross, sd, threshold, max_spikes):
    from cabench.benchmark.methods._peel_core import peel

    return peel(r, num, tmpl, cut_norm2, cross, sd, threshold, max_spikes, _BLOCK)
