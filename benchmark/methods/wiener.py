"""``wiener``: regularised linear (Wiener) deconvolution with an exponential kernel."""

from __future__ import annotations

import math

import numpy as np

from cabench.benchmark.methods.base import Method, Param
from cabench.benchmark.methods.tools import (
    IndicatorDefaults,
    baseline,
    floor_baseline,
    indicator_params,
    noise_sd,
)


class Wiener(IndicatorDefaults, Method):
    """Wiener deconvolution in the frequency domain (a linear baseline).

    Model: ``y = b + amplitude * (h * s) + noise`` with ``s`` the spikes per frame, white
    (Poisson-like) in time, and ``h`` an exponential with time constant ``decay_s``, peak 1,
    averaged over spike times spread uniformly within each frame's interval (so the estimate
    is centred on the frame, like binned ground truth). Per trace: the noise SD ``sd`` comes
    from the power in the upper half of the band (:func:`tools.noise_sd`), the baseline ``b``
    from a sigma-clipped mean, the spike power from ``var(y) - sd^2``. The filter
    ``conj(H) / (|H|^2 + regularisation * sd^2 / P)`` with ``P = (var(y) - sd^2) / sum(h^2)``
    gives ``amplitude * s``; its positive part divided by ``amplitude`` is the estimate in
    expected spikes per frame. A trace with no power above the noise gives zeros. The trace is
    padded with its baseline at the end so that the circular convolution does not wrap.
    """

    name = "wiener"
    description = "Wiener deconvolution with an exponential kernel, rectified, / amplitude"
    params = {
        **indicator_params("decay_s", "amplitude"),
        "regularisation": Param(
            float, 1.0, "multiplies the noise-to-signal ratio of the Wiener filter (1: optimal "
            "for the model; larger: smoother)", unit="ratio", minimum=0,
            exclusive_minimum=True,
        ),
    }
    min_frames = 16

    indicator_fields = ("decay_s", "amplitude")

    def _prepare(self, frame_rate: float) -> None:
        self._p = self.resolved_params()

    def _infer_row(self, y: np.ndarray, frame_rate: float) -> tuple[np.ndarray, None]:
        from scipy import fft

        p = self._p
        n = y.size
        tau = p["decay_s"] * frame_rate  # frames
        sd = noise_sd(y)
        x = y - min(baseline(y, sd), floor_baseline(y, sd, 0.5 * tau))
        power = float(np.var(y)) - sd * sd
        if not power > 0:
            return np.zeros(n), None
        pad = min(int(math.ceil(8 * tau)) + 8, 10 * n)
        m = fft.next_fast_len(n + pad, real=True)
        # expected sampled kernel for a spike uniform in [k - 1/2, k + 1/2) frames: lag 0 sees
        # only spikes before the frame time, lags j >= 1 all of them
        g = math.exp(-1.0 / tau)
        h0 = tau * (1.0 - math.exp(-0.5 / tau))
        c = tau * (math.exp(0.5 / tau) - math.exp(-0.5 / tau))
        z = np.exp(-2j * np.pi * np.arange(m // 2 + 1) / m)
        h_f = h0 + c * g * z / (1.0 - g * z)
        energy = h0 * h0 + c * c * g * g / (1.0 - g * g)
        lam = p["regularisation"] * sd * sd * energy / power
        filt = np.conj(h_f) / (np.abs(h_f) ** 2 + lam)
        est = fft.irfft(fft.rfft(x, m) * filt, m)[:n]
        return np.maximum(est, 0.0) / p["amplitude"], None
