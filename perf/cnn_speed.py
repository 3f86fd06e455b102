"""Inference speed of the ``cnn`` method: 1,000 cells x 10,000 frames at 30 Hz.

A randomly initialised model of the default architecture (34,381 parameters per network; the
weights do not matter for speed) is written to a temporary model folder and run through
``get_method("cnn", model=...).infer`` (noise levels, ensemble choice, clipping, spike times:
the whole method), once per ensemble size, on the CPU and on CUDA when available. The traces
are simulated (GCaMP6f, nu spread over 1-9 so every per-level ensemble is used). Prints the best
of ``--repeats`` wall times and cells x frames per second. Target: under 10 s on 2 CPU cores
for one network per noise level. ``--model default`` (or a model folder) times that trained
model instead, e.g. the shipped default (one FiLM-conditioned ensemble of 2 networks).

Usage: python perf/cnn_speed.py [--cells 1000] [--frames 10000] [--ensemble 1,5]
[--model default|FOLDER] [--repeats 2] [--threads N] [--batch-size 32768]
[--inputs dff|innovation|dff+innovation]
"""

import argparse
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--ensemble", default="1,5", help="ensemble sizes to time")
    ap.add_argument("--model", default=None, help="time this model folder ('default': the "
                    "shipped one) instead of random models of --ensemble sizes")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    ap.add_argument("--batch-size", type=int, default=32768, help="frames per forward pass")
    ap.add_argument("--inputs", default="dff", help="input channels of the random models "
                    "(dff, innovation, dff+innovation)")
    a = ap.parse_args()

    import torch

    from cabench.benchmark.learned.model import CnnModel, init_weights
    from cabench.benchmark.learned.recipe import Recipe
    from cabench.benchmark.learned.train import save_model
    from cabench.benchmark.methods import get_method
    from cabench.simulators import simulate

    if a.threads:
        torch.set_num_threads(a.threads)
    nu = np.linspace(1, 9, a.cells)
    parts = [simulate(preset="GCaMP6f", cells=int(np.sum(np.round(nu) == v)),
                      duration=a.frames / 30.0, noise=float(v), seed=int(v))
             for v in np.unique(np.round(nu))]
    traces = np.concatenate([p.traces[0] for p in parts])[:, : a.frames]
    n = traces.size
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{traces.shape[0]} cells x {traces.shape[1]} frames at 30 Hz, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch_size} frames")

    def time_model(label, model):
        for device in devices:
            m = get_method("cnn", model=model, device=device, batch_size=a.batch_size)
            m.infer(traces[:4, :2000], 30.0)  # load the model, warm up
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                res = m.infer(traces, 30.0)
                best = min(best, time.perf_counter() - t0)
            assert np.isfinite(res.estimate).all()
            print(f"{device:>4}: {label}: {best:6.2f} s, {n / best / 1e6:6.2f} M cell-frames/s")

    if a.model:
        time_model(f"model {a.model}", a.model)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in a.ensemble.split(",")]:
            recipe = Recipe(ensemble_size=size, inputs=a.inputs)
            model = CnnModel(recipe)
            gen = torch.Generator().manual_seed(0)
            for net in model.modules():
                if hasattr(net, "conv1"):
                    init_weights(net, gen)
            folder = save_model(model, f"{tmp}/m{size}")
            time_model(f"{size} network(s) per noise level", str(folder))

if __name__ == "__main__":
    main()
