"""``oasis-l0``: OASIS AR(1) with an L0 penalty (sparse, unshrunk events)."""

from __future__ import annotations

import numpy as np

from cabench.benchmark.methods.oasis_common import ALIGN, AMPLITUDE, OPTIMIZE_G, OasisMethod


class OasisL0(OasisMethod):
    """OASIS AR(1) with the L0 penalty; decay, baseline and noise estimated per trace.

    L0 keeps event sizes unshrunk and mostly one spike per event, so one spike is the median
    event size (see :mod:`cabench.benchmark.methods.oasis_common`).
    """

    name = "oasis-l0"
    description = "OASIS AR(1) deconvolution with an L0 penalty, parameters estimated per trace"
    params = {"amplitude": AMPLITUDE, "optimize_g": OPTIMIZE_G, "align": ALIGN}
    amplitude_quantile = 0.5

    def _deconvolve(self, y: np.ndarray, frame_rate: float):
        from oasis.functions import deconvolve

        r = deconvolve(y, penalty=0, optimize_g=self.parameters["optimize_g"])
        return r[1], r[3]
