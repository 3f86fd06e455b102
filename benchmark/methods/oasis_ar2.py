"""``oasis-ar2``: OASIS with an AR(2) kernel (rise and decay), L1 penalty, all estimated."""

from __future__ import annotations

import numpy as np

from cabench.benchmark.methods.oasis_common import ALIGN, AMPLITUDE, OPTIMIZE_G, OasisMethod


class OasisAR2(OasisMethod):
    """OASIS AR(2), L1 penalty; both AR coefficients, baseline and noise estimated per trace.

    oasis-deconv asks for AR(2) with ``tau_d=None, tau_r=None`` (the older ``g=(None, None)``
    is deprecated). Output in expected spikes per frame as in
    :mod:`cabench.benchmark.methods.oasis_common`.
    """

    name = "oasis-ar2"
    description = (
        "OASIS AR(2) deconvolution (rise and decay), L1 penalty, all parameters estimated per "
        "trace"
    )
    params = {"amplitude": AMPLITUDE, "optimize_g": OPTIMIZE_G, "align": ALIGN}
    min_frames = 100  # oasis's AR(2) solver fails on traces of 50-99 frames

    def _deconvolve(self, y: np.ndarray, frame_rate: float):
        from oasis.functions import deconvolve

        r = deconvolve(
            y, tau_d=None, tau_r=None, penalty=1, optimize_g=self.parameters["optimize_g"]
        )
        return r[1], r[3]
