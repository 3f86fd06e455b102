"""Shared machinery of the OASIS methods (Friedrich, Zhou & Paninski 2017; ``oasis-deconv``).

OASIS fits ``y = b + c + noise`` with ``c_t = g1 c_{t-1} (+ g2 c_{t-2}) + s_t``, ``s >= 0``,
under a noise constraint, and returns ``s`` in units of dF/F per frame (the size of the calcium
jump), not spikes, and places it at the first frame a spike affects. Two conversions follow.

Timing (``align``, on by default): for AR(1) a spike anywhere in ``(t_{k-1}, t_k]`` lands
on frame ``k``, so ``s`` lags the spikes by half a frame on average; for AR(2) (a rise time)
by up to a frame (:func:`tools.ar_onset_delay` computes the mean delay from ``g``). The
estimate is shifted earlier by that delay with linear interpolation (total kept) so that frame
``k`` counts the spikes in ``[t_k - 1/2, t_k + 1/2)`` frames, like binned ground truth.
``align=False`` keeps oasis's placement, which is exact for spikes that fall on frame times
(e.g. the CalciumGAN paper's artificial data).

Units: the estimate in **expected spikes per frame** is ``s`` divided by the ``s`` of one
spike:

* ``amplitude`` given (peak dF/F of one spike, a fraction): one spike has
  ``s = amplitude / peak``, where ``peak`` is the peak of the AR impulse response (1 for
  AR(1)). With the L1 penalty each event is shrunk, so counts then come out low.
* ``amplitude`` None (the default): estimated per trace from the events of ``s`` (runs of
  consecutive frames with ``s`` above 1e-3 of its maximum, summed). One spike is the
  ``amplitude_quantile``-th quantile of the event sizes: 0.75 for the L1 methods, whose output
  splits each spike over neighbouring frames and adds many small noise events (so the median
  event underestimates a spike), 0.5 for the L0 method, whose events are mostly single spikes.
  Multi-spike bursts are a minority at cortical rates and hardly move these quantiles. A trace
  without events gives zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cabench.benchmark.methods.base import Method, Param
from cabench.benchmark.methods.tools import (
    ar_impulse_peak,
    ar_onset_delay,
    event_sizes,
    shift_earlier,
)

AMPLITUDE = Param(
    float,
    None,
    "peak dF/F of one spike used to turn s into spikes; None estimates it per trace from the "
    "events of s",
    unit="dF/F (fraction)",
    minimum=0,
    exclusive_minimum=True,
    nullable=True,
)
OPTIMIZE_G = Param(
    int,
    0,
    "number of large isolated events used to refine the estimated AR coefficients (0: no "
    "refinement)",
    unit="events",
    minimum=0,
    maximum=100,
)
ALIGN = Param(
    bool,
    True,
    "shift the estimate earlier by oasis's mean delay (1/2 frame for AR(1), up to 1 for AR(2)) "
    "so that each frame is centred on its interval",
)


class OasisMethod(Method):
    """An OASIS variant: subclasses implement :meth:`_deconvolve`."""

    requires = ("oasis",)
    package = "oasis-deconv"
    install_hint = "pip install oasis-deconv"
    # the auto-estimation of g and of the noise needs a few autocovariance lags and a spectrum
    min_frames = 32
    amplitude_quantile: float = 0.75

    def _deconvolve(self, y: np.ndarray, frame_rate: float) -> tuple[np.ndarray, Any]:
        """Return oasis's ``s`` (dF/F per frame) and the AR coefficients ``g`` it used."""
        raise NotImplementedError

    def _infer_row(self, y: np.ndarray, frame_rate: float) -> tuple[np.ndarray, None]:
        s, g = self._deconvolve(np.ascontiguousarray(y, dtype=np.float64), frame_rate)
        s = np.maximum(np.asarray(s, dtype=np.float64), 0.0)
        amplitude = self.parameters["amplitude"]
        if amplitude is None:
            sizes = event_sizes(s)
            if sizes.size == 0:
                return np.zeros_like(s), None
            per_spike = float(np.quantile(sizes, self.amplitude_quantile))
        else:
            per_spike = amplitude / ar_impulse_peak(g)
        e = s / per_spike
        if self.parameters["align"]:
            e = shift_earlier(e, ar_onset_delay(g))
        return e, None
