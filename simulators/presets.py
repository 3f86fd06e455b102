"""Indicator presets: literature values of single-spike amplitude and kinetics.

Each preset is a partial parameter set for :class:`cabench.simulators.params.SimulationParams`;
anything the user sets explicitly overrides it. ``amplitude`` is the peak dF/F (fraction) of one
isolated spike, ``decay``/``rise`` the time constants (s) of the double-exponential kernel; a
half-decay time t_1/2 converts as tau = t_1/2 / ln 2.

Sources:
  [Chen13]  Chen et al. 2013, Nature 499:295 (GCaMP6 family)
  [Deneux16] Deneux et al. 2016, Nat Commun 7:12190 (MLspike fits on ground truth: GCaMP6s
            tau 0.786 s, A 0.22, Hill 1.73; GCaMP6f tau 0.214 s, A 0.12, Hill 2.05). MLspike's
            saturation constants (0.0063, 0.0020) act on a different calcium scale; here the
            saturation is set so that the largest dF/F, amplitude * (1 + s) / s, is a few dF/F.
  [Dana19]  Dana et al. 2019, Nat Methods 16:649 (jGCaMP7)
  [Zhang23] Zhang et al. 2023, Nature 615:884 (jGCaMP8: 1-AP dF/F 0.48/0.61/0.60, half-decay
            39/41/80 ms for 8f/8m/8s, near-linear to 3-5 spikes)
  [Kerr05]  Kerr et al. 2005, PNAS 102:14063; Grewe et al. 2010, Nat Methods 7:399 (OGB-1 ~0.1
            dF/F per spike, decay ~1 s, nearly linear with mild saturation)
  [Li20]    Li et al. 2020, arXiv 2009.02707 (CalciumGAN artificial data: AR(1) g = 0.95 at
            24 Hz, y = c + 0.3 N(0, 1), dichotomised-Gaussian spikes 0-2 Hz, mean ~0.2 Hz)
"""

from __future__ import annotations

import math

from cabench.indicators import indicator_key

_LN2 = math.log(2.0)

PRESETS: dict[str, dict] = {
    "GCaMP6f": dict(
        indicator="GCaMP6f", amplitude=0.12, decay=0.214, rise=0.02, hill=2.05,
        saturation=0.04, source="[Deneux16] fit; rise [Chen13]; max dF/F ~3 (assumed)",
    ),
    "GCaMP6s": dict(
        indicator="GCaMP6s", amplitude=0.22, decay=0.786, rise=0.07, hill=1.73,
        saturation=0.045, source="[Deneux16] fit; rise [Chen13]; max dF/F ~5 (assumed)",
    ),
    "jGCaMP7f": dict(
        indicator="jGCaMP7f", amplitude=0.2, decay=0.1 / _LN2, rise=0.015, hill=1.5,
        saturation=0.01, source="[Dana19]: ~0.2 dF/F, ~0.1 s half-decay, supralinear",
    ),
    "jGCaMP8f": dict(
        indicator="jGCaMP8f", amplitude=0.48, decay=0.039 / _LN2, rise=0.003, hill=1.0,
        saturation=0.1, source="[Zhang23]",
    ),
    "jGCaMP8m": dict(
        indicator="jGCaMP8m", amplitude=0.61, decay=0.041 / _LN2, rise=0.003, hill=1.0,
        saturation=0.1, source="[Zhang23]",
    ),
    "jGCaMP8s": dict(
        indicator="jGCaMP8s", amplitude=0.60, decay=0.080 / _LN2, rise=0.005, hill=1.0,
        saturation=0.1, source="[Zhang23]",
    ),
    "OGB-1": dict(
        indicator="OGB-1", amplitude=0.10, decay=1.0, rise=0.01, hill=1.0, saturation=0.02,
        source="[Kerr05]",
    ),
    # The CalciumGAN paper's artificial ground truth: c_t = 0.95 c_{t-1} + s_t, y = c + 0.3 N(0,1)
    # at 24 Hz, with spikes from a dichotomised Gaussian on the frame grid.
    "calciumgan-paper": dict(
        indicator="AR1-paper", amplitude=1.0, decay=-1.0 / (24.0 * math.log(0.95)), rise=0.0,
        hill=1.0, saturation=0.0, subframe=False, amplitude_cv=0.0, cell_amplitude_cv=0.0,
        frame_rate=24.0, sigma=0.3, noise=None, spike_model="dichotomised-gaussian",
        rate=0.15, rate_sigma=0.9, max_rate=2.0, correlation=0.05, refractory=0.0,
        cells=102, duration=21556 / 24.0, source="[Li20]",
    ),
}


def preset(name: str) -> dict:
    """The parameters of a preset (a copy); unknown names raise KeyError listing the valid ones."""
    try:
        p = dict(PRESETS[name])
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}") from None
    p.pop("source")
    return p


def preset_for_indicator(indicator: str) -> str | None:
    """The preset of an indicator named in data (``OGB1`` -> ``OGB-1``, ``GCaMP8f`` ->
    ``jGCaMP8f``; case, ``-``, ``_`` and the ``j`` of jGCaMP ignored), or None if none has it."""
    key = indicator_key(indicator or "")
    for name, p in PRESETS.items():
        if key and key in (indicator_key(name), indicator_key(p.get("indicator", ""))):
            return name
    return None
