"""run_suite with one job against ``--jobs`` worker processes, timed in the same run.

A CPU-bound suite: ``--datasets`` simulated datasets (GCaMP6f, GCaMP6s and jGCaMP8f in turn,
noise 2, 4 and 6 in turn, ``--cells`` cells of ``--duration`` s at 30 Hz) times the methods
peeling, oasis-ar2 and oasis-kernel. A tiny suite runs first so that numba's on-disk cache is
filled before either timing. Each side runs into a fresh folder with ``force=True`` and
simulates its datasets itself, as a user's run does. Prints the best of ``--repeats`` wall
times of each side with when its first case was done (worker start-up) and how long the work
after its last case took (scores, leaderboards, figures: serial), their ratio, the time one
process takes to simulate the datasets (serial in both sides) and checks that both sides'
scores are identical apart from the timing column.
Usage: python perf/suite_jobs_speed.py [--jobs 2] [--datasets 8] [--cells 40]
[--duration 600] [--repeats 1]
"""

import argparse
import os
import tempfile
import time

import pandas as pd

from cabench.benchmark.suite import DatasetSpec, MethodSpec, Suite, run_suite

PRESETS = ("GCaMP6f", "GCaMP6s", "jGCaMP8f")
METHODS = ("peeling", "oasis-ar2", "oasis-kernel")
KEYS = ["dataset", "recording", "cell", "method", "metric"]


def make_suite(n, cells, duration):
    datasets = [
        DatasetSpec(name=f"sim{i}-{PRESETS[i % 3]}", simulate=dict(
            preset=PRESETS[i % 3], cells=cells, duration=duration, noise=2.0 + 2 * (i % 3),
            seed=100 + i))
        for i in range(n)
    ]
    return Suite(datasets, [MethodSpec(m) for m in METHODS], name="jobs-speed")


def timed_run(suite, root, jobs, repeats):
    """Best of ``repeats``: (total s, s until the first case is done, s after the last, scores)."""
    best, scores = None, None
    for r in range(repeats):
        done = []
        t0 = time.perf_counter()
        scores = run_suite(suite, os.path.join(root, f"jobs{jobs}-{r}"), jobs=jobs, force=True,
                           progress=lambda *_, done=done: done.append(time.perf_counter()))
        t = time.perf_counter()
        run = (t - t0, done[0] - t0, t - done[-1])
        best = run if best is None or run[0] < best[0] else best
    return (*best, scores)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--datasets", type=int, default=8)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()

    suite = make_suite(a.datasets, a.cells, a.duration)
    with tempfile.TemporaryDirectory() as root:
        run_suite(make_suite(1, 2, 10.0), os.path.join(root, "warm-up"), force=True)
        t0 = time.perf_counter()
        for d in suite.datasets:
            d.load()
        t_load = time.perf_counter() - t0
        t1, first1, last1, s1 = timed_run(suite, root, 1, a.repeats)
        tn, firstn, lastn, sn = timed_run(suite, root, a.jobs, a.repeats)

    def tidy(s):
        s = s.drop(columns="seconds").sort_values(KEYS, kind="stable")
        return s.reset_index(drop=True)

    pd.testing.assert_frame_equal(tidy(s1), tidy(sn), check_exact=True)
    n_cases = len(s1.drop_duplicates(["dataset", "recording", "method"]))
    print(f"{a.datasets} datasets x {len(METHODS)} methods = {n_cases} cases, {a.cells} cells "
          f"x {a.duration:g} s each, {os.cpu_count()} CPUs")
    print(f"simulating the datasets (serial in both) {t_load:6.2f} s")
    print(f"run_suite jobs=1   {t1:6.2f} s   (first case done at {first1:5.2f} s, "
          f"after the last case {last1:5.2f} s)")
    print(f"run_suite jobs={a.jobs:<2d}  {tn:6.2f} s   (first case done at {firstn:5.2f} s, "
          f"after the last case {lastn:5.2f} s)   ratio {t1 / tn:4.2f}x")
    print("scores identical (timing column aside)")


if __name__ == "__main__":
    main()
