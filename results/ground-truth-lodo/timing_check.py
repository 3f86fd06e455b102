"""Timing check of a method on one held-out ground-truth dataset at 30 Hz, nu 2.

Shifts the method's estimate in time (steps of 1/60 s; positive = later) and prints, per
shift, the median over cells of corr_25hz, then the best shift and the curve's width at half
its peak (ms). Used for the "Timing" figures of README.md here:

    python results/ground-truth-lodo/timing_check.py ../shared/ground_truth/DS30-GCaMP8f-m-V1 \\
        cnn model=models/no-ds30
    python results/ground-truth-lodo/timing_check.py ../shared/ground_truth/DS30-GCaMP8f-m-V1 \\
        oasis-ar1
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from cabench.benchmark.methods import get_method, method_class
from cabench.benchmark.methods.base import split_params
from cabench.benchmark.metrics import corr_25hz
from cabench.benchmark.suite import DatasetSpec
from cabench.errors import CabenchError

SHIFTS_S = np.arange(-6, 7) / 60.0
NO_SHIFT = int(np.flatnonzero(SHIFTS_S == 0)[0])


def shift_curve(folder: Path, method: str, params: dict[str, str]) -> np.ndarray:
    """Median over cells of corr_25hz at each of ``SHIFTS_S``."""
    spec = DatasetSpec(name=f"{folder.name}.30Hz-nu2", path=str(folder), resample=30.0,
                       noise=2.0)
    _, sets, _ = spec.load()
    m = get_method(method, **method_class(method).parse_params(params))
    rows = []
    for ts in sets:
        if ts is None:
            continue
        est = m.infer(ts.traces, ts.frame_rate).estimate
        times = ts.times()
        for t in range(ts.n_trials):
            for c in range(ts.n_cells):
                rows.append([corr_25hz(est[t, c], times + s, ts.spikes(t, c)) for s in SHIFTS_S])
    return np.nanmedian(np.array(rows), axis=0)


def half_width_ms(curve: np.ndarray) -> float:
    """Width (ms) of the curve above half its peak, linearly interpolated between shifts."""
    half, k = curve.max() / 2, int(np.argmax(curve))
    step = SHIFTS_S[1] - SHIFTS_S[0]

    def edge(direction: int) -> float:
        i = k
        while 0 <= i + direction < curve.size and curve[i + direction] > half:
            i += direction
        j = i + direction
        if not 0 <= j < curve.size:
            return SHIFTS_S[i]
        return SHIFTS_S[i] + direction * step * (curve[i] - half) / (curve[i] - curve[j])

    return 1000 * (edge(1) - edge(-1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a CASCADE ground-truth dataset folder")
    ap.add_argument("method", help="a registered method, e.g. cnn or oasis-ar1")
    ap.add_argument("params", nargs="*", help="method parameters as name=value")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    try:
        curve = shift_curve(a.folder, a.method, split_params(a.params, "parameter"))
    except CabenchError as e:
        ap.error(str(e))
    for s, v in zip(SHIFTS_S, curve, strict=True):
        print(f"{1000 * s:+5.0f} ms  {v:.3f}")
    k = int(np.argmax(curve))
    print(f"best {1000 * SHIFTS_S[k]:+.0f} ms: {curve[k]:.3f} (no shift {curve[NO_SHIFT]:.3f}); "
          f"width at half peak {half_width_ms(curve):.0f} ms")


if __name__ == "__main__":
    main()
