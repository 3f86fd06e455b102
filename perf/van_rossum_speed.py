"""van Rossum distances of all pairs: elephant 1.2.1 against cabench, timed in the same run.

100 Poisson trains of ~600 spikes (2 Hz over 300 s), tau = 1 s, all pairs. elephant:
``elephant.spike_train_dissimilarity.van_rossum_distance`` on neo SpikeTrains (times in s);
cabench: ``cabench.benchmark.metrics.van_rossum_matrix`` on plain arrays (JIT compiled before the
timing). Prints the best of ``--repeats`` wall times, the ratio and the largest relative difference
of the off-diagonal distances. Usage: python perf/van_rossum_speed.py [--trains 100]
[--spikes 600] [--tau 1.0] [--repeats 5]
"""

import argparse
import time
import warnings

import numpy as np


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trains", type=int, default=100)
    ap.add_argument("--spikes", type=int, default=600, help="mean spikes per train")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds")
    ap.add_argument("--tau", type=float, default=1.0, help="seconds")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()

    import neo
    import numba
    import quantities as pq
    from elephant.spike_train_dissimilarity import van_rossum_distance

    from cabench.benchmark.metrics import van_rossum_matrix

    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, a.duration, rng.poisson(a.spikes)))
              for _ in range(a.trains)]
    sts = [neo.SpikeTrain(t * pq.s, t_stop=a.duration * pq.s) for t in trains]
    van_rossum_matrix(trains[:3], a.tau)  # JIT compile (or load the cache) outside the timing

    def elephant():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return van_rossum_distance(sts, a.tau * pq.s)

    t_el, ref = best_of(elephant, a.repeats)
    t_cb, got = best_of(lambda: van_rossum_matrix(trains, a.tau), a.repeats)
    off = ~np.eye(a.trains, dtype=bool)
    rel = np.max(np.abs(got[off] - ref[off]) / ref[off])
    n = sum(t.size for t in trains)
    print(f"{a.trains} trains, {n / a.trains:.0f} spikes each on average, tau {a.tau} s, "
          f"{a.trains * (a.trains - 1) // 2} pairs, numba threads {numba.get_num_threads()}")
    print(f"elephant van_rossum_distance  {t_el:8.4f} s")
    print(f"cabench van_rossum_matrix     {t_cb:8.4f} s   ratio {t_el / t_cb:6.1f}x")
    print(f"largest relative difference   {rel:.1e}")


if __name__ == "__main__":
    main()
