"""``derivative``: the positive part of the derivative of the smoothed trace (a baseline)."""

from __future__ import annotations

import numpy as np

from cabench.benchmark.methods.base import Method, Param


class Derivative(Method):
    """Smoothed-derivative baseline.

    The trace (dF/F) is smoothed with a Gaussian of SD ``sigma_s`` seconds, differentiated with
    central differences (``(y[k+1] - y[k-1]) / 2``, which centres a jump between frames
    ``k - 1`` and ``k`` on both), and its positive part is divided by ``amplitude``, the dF/F
    rise of one spike: the result is in expected spikes per frame. Decays are ignored and
    positive noise excursions count as activity, so totals are high on noisy traces.
    """

    name = "derivative"
    description = "positive part of the derivative of the Gaussian-smoothed trace, / amplitude"
    params = {
        "sigma_s": Param(
            float, 0.1, "SD of the Gaussian smoothing before differentiating (0: none)",
            unit="s", minimum=0,
        ),
        "amplitude": Param(
            float, 0.1, "dF/F rise of one spike", unit="dF/F (fraction)", minimum=0,
            exclusive_minimum=True,
        ),
    }
    min_frames = 3

    def _infer_row(self, y: np.ndarray, frame_rate: float) -> tuple[np.ndarray, None]:
        from scipy.ndimage import gaussian_filter1d

        sigma = self.parameters["sigma_s"] * frame_rate
        smooth = gaussian_filter1d(y, sigma, mode="nearest") if sigma > 0 else y
        d = np.gradient(smooth)
        return np.maximum(d, 0.0) / self.parameters["amplitude"], None
