"""Simulator throughput against a naive numpy/scipy pipeline, timed in the same run.

Naive: Bernoulli spikes per frame, scipy.signal.lfilter AR(1) along time, Gaussian noise,
float32 output. cabench: Poisson spikes with sub-frame timing, AR(1) kernel, Gaussian noise
(by sigma, and by a target nu), into a float32 array. Prints neuron-frames per second and the
ratio. Usage: python perf/simulate_speed.py [--cells 1000] [--frames 100000]
"""

import argparse
import time

import numpy as np
from scipy.signal import lfilter

from cabench.simulators.pipeline import Simulation


def naive(cells, frames, fr, rate, g, sigma, seed=0):
    rng = np.random.default_rng(seed)
    s = (rng.random((cells, frames)) < rate / fr).astype(np.float32)
    c = lfilter([1.0], [1.0, -g], s, axis=1)
    return (c + sigma * rng.standard_normal((cells, frames))).astype(np.float32)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    fr, rate, decay = 30.0, 1.0, 0.7
    n = a.cells * a.frames
    common = dict(cells=a.cells, duration=a.frames / fr, frame_rate=fr, rate=rate, rate_sigma=0,
                  rise=0.0, decay=decay, hill=1.0, saturation=0.0, seed=1)
    g = float(np.exp(-1 / (decay * fr)))
    Simulation({**common, "cells": 256, "duration": 10.0, "sigma": 0.1}).run()  # JIT warm-up

    t_naive = best_of(lambda: naive(a.cells, a.frames, fr, rate, g, 0.1), 1)
    t_sigma = best_of(lambda: Simulation({**common, "sigma": 0.1}).run(keep_calcium=False),
                      a.repeats)
    t_nu = best_of(lambda: Simulation({**common, "noise": 2.0}).run(keep_calcium=False),
                   a.repeats)
    print(f"{a.cells} cells x {a.frames} frames = {n / 1e6:.0f} M neuron-frames, float32")
    print(f"naive numpy/scipy      {t_naive:7.3f} s  {n / t_naive / 1e6:7.1f} M neuron-frames/s")
    for name, t in [("cabench AR(1)+sigma", t_sigma), ("cabench AR(1)+nu", t_nu)]:
        print(f"{name:<22} {t:7.3f} s  {n / t / 1e6:7.1f} M neuron-frames/s  "
              f"ratio {t_naive / t:5.1f}x")


if __name__ == "__main__":
    main()
