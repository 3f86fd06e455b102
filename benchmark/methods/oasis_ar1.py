"""``oasis-ar1``: OASIS with an AR(1) kernel, L1 penalty, all parameters estimated."""

from __future__ import annotations

import numpy as np

from cabench.benchmark.methods.oasis_common import ALIGN, AMPLITUDE, OPTIMIZE_G, OasisMethod


class OasisAR1(OasisMethod):
    """OASIS AR(1), L1 penalty; decay, baseline and noise estimated per trace.

    Output in expected spikes per frame: oasis's ``s`` divided by the ``s`` of one spike (see
    :mod:`cabench.benchmark.methods.oasis_common`).
    """

    name = "oasis-ar1"
    description = (
        "OASIS AR(1) deconvolution, L1 penalty, decay/baseline/noise estimated per trace "
        "(Friedrich et al. 2017)"
    )
    params = {"amplitude": AMPLITUDE, "optimize_g": OPTIMIZE_G, "align": ALIGN}

    def _deconvolve(self, y: np.ndarray, frame_rate: float):
        from oasis.functions import deconvolve

        r = deconvolve(y, penalty=1, optimize_g=self.parameters["optimize_g"])
        return r[1], r[3]
