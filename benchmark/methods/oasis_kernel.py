"""``oasis-kernel``: OASIS with a fixed kernel taken from the indicator's kinetics."""

from __future__ import annotations

import numpy as np

from cabench.benchmark.methods.base import Param
from cabench.benchmark.methods.oasis_common import ALIGN, AMPLITUDE, OasisMethod
from cabench.benchmark.methods.tools import IndicatorDefaults, indicator_params


class OasisKernel(IndicatorDefaults, OasisMethod):
    """OASIS with fixed AR coefficients from decay and rise times; noise and baseline estimated.

    ``g = exp(-1 / (decay_s * frame_rate))`` (AR(1), rise 0) or, with a rise time, the AR(2)
    ``(g_d + g_r, -g_d g_r)`` of the double exponential (oasis's convention). ``decay_s`` and
    ``rise_s`` default to the ``indicator`` preset's values. Output in expected spikes per
    frame as in :mod:`cabench.benchmark.methods.oasis_common`.
    """

    name = "oasis-kernel"
    description = (
        "OASIS deconvolution with a fixed kernel from the indicator's decay and rise times"
    )
    params = {
        **indicator_params("decay_s", "rise_s"),
        "penalty": Param(int, 1, "sparsity penalty: 1 is L1, 0 is L0", choices=(1, 0)),
        "amplitude": AMPLITUDE,
        "align": ALIGN,
    }
    min_frames = 16  # 100 with a rise time: oasis's AR(2) solver fails on 50-99 frames

    def _check_params(self) -> None:
        super()._check_params()
        p = self.resolved_params()
        self.amplitude_quantile = 0.75 if p["penalty"] == 1 else 0.5
        self.min_frames = 100 if p["rise_s"] > 0 else 16

    def _deconvolve(self, y: np.ndarray, frame_rate: float):
        from oasis.functions import deconvolve

        p = self.resolved_params()
        r = deconvolve(
            y, tau_d=p["decay_s"], tau_r=p["rise_s"], framerate=frame_rate,
            penalty=p["penalty"],
        )
        return r[1], r[3]
