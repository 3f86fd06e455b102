"""Training speed of the ``cnn`` method: one window per sample (as published) against segments.

Both sides train the default architecture (optionally FiLM-conditioned) through the package's
own training loop (:func:`cabench.benchmark.learned.train.fit_network`) on the same simulated
recordings (GCaMP6f, 30 Hz), for one epoch of ``--samples`` target frames each, batches of
1,024 target frames. ``segment = 1`` cuts a 64-frame window per target frame; ``segment = S``
evaluates the windows of S consecutive target frames in one sliding pass, sharing their
convolutions. Prints target frames per second of each and the ratio.

Usage: python perf/cnn_train_speed.py [--samples 300000] [--segments 1,16,32,64]
[--conditioned] [--threads N]
"""

import argparse
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=300_000, help="target frames per side")
    ap.add_argument("--segments", default="1,16,32,64", help="segment lengths to time")
    ap.add_argument("--conditioned", action="store_true", help="FiLM noise conditioning")
    ap.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    a = ap.parse_args()

    import torch

    from cabench.benchmark.learned.data import build_samples, prepare
    from cabench.benchmark.learned.model import CascadeNet, init_weights
    from cabench.benchmark.learned.recipe import Recipe
    from cabench.benchmark.learned.train import SegmentBatches, fit_network
    from cabench.simulators import simulate

    if a.threads:
        torch.set_num_threads(a.threads)
    sets = [simulate(preset="GCaMP6f", cells=10, duration=600, noise=1.0, seed=s)
            for s in range(3)]
    for i, ts in enumerate(sets):
        ts.params["dataset"] = f"sim{i}"
    dev = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'FiLM-conditioned' if a.conditioned else 'plain'} network, "
          f"{a.samples} target frames per side")
    rates = {}
    for seg in [int(s) for s in a.segments.split(",")]:
        recipe = Recipe(noise_conditioning=a.conditioned, noise_levels=(2.0,), epochs=1,
                        max_samples=a.samples, segment=seg)
        samples = build_samples(prepare(sets, recipe), recipe, (2.0,), a.samples, seed=0)
        batches = SegmentBatches(samples, recipe, dev)
        no_validation = SegmentBatches(build_samples([], recipe, (2.0,), 1, seed=0), recipe, dev)
        net = CascadeNet(recipe)
        gen = torch.Generator().manual_seed(0)
        init_weights(net, gen)
        t0 = time.perf_counter()
        row = fit_network(net, batches, no_validation, recipe, dev, gen)[0]
        train_s = time.perf_counter() - t0
        rates[seg] = samples.frames / train_s
        print(f"segment {seg:3d}: {train_s:6.1f} s ({rates[seg] / 1e3:6.0f} k target frames/s,"
              f" x{rates[seg] / rates[min(rates)]:5.1f} vs segment {min(rates)}), "
              f"train loss {row['train_loss']:.4f}")


if __name__ == "__main__":
    main()
