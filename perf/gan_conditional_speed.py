"""Speed of the spike-conditioned CalciumGAN: generation throughput and training steps/s.

Generation: ``generate_traces`` on ``--traces`` spike trains of ``--frames`` frames (Poisson
spikes at 1 Hz, 30 Hz frames) from a run folder holding an untrained model of the default (or
given) architecture; speed does not depend on the weights. Prints traces x frames per second on
the CPU and, when available, on CUDA (float32; includes drawing the noise on the CPU and the
copies). Training: generator steps (each with 5 critic updates and the gradient penalty) per
second at ``--batch`` windows of ``--window`` frames on random data.

Usage: python perf/gan_conditional_speed.py [--traces 1000] [--frames 10000] [--gen-batch 64]
[--batch 32] [--window 512] [--train-steps 3] [--channels 64] [--threads N]
[--devices cpu,cuda] [--skip-train]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path


def make_run(folder: Path, model, seed: int = 0) -> Path:
    """A conditional run folder with untrained weights (for timing only)."""
    import torch

    from cabench.generators.conditional_train import (
        FORMAT,
        FORMAT_VERSION,
        KIND,
        ConditionalTrainConfig,
        ConditionalTrainer,
    )

    tr = ConditionalTrainer(model, ConditionalTrainConfig(seed=seed), torch.device("cpu"))
    folder.mkdir(parents=True)
    cfg = dict(format=FORMAT, format_version=FORMAT_VERSION, kind=KIND, model=model.to_dict(),
               training=tr.tc.to_dict(), data=dict(frame_rate=30.0, trace_scale=1.0,
                                                   nu_median=1.0, sources=[]))
    (folder / "config.json").write_text(json.dumps(cfg))
    torch.save(tr.state(), folder / "checkpoint.pt")
    return folder


def spike_set(traces: int, frames: int, rate_hz: float = 1.0, seed: int = 0):
    import numpy as np

    from cabench.traceset import TraceSet, ragged

    rng = np.random.default_rng(seed)
    dur = frames / 30.0
    parts = [np.sort(rng.uniform(0, dur, rng.poisson(rate_hz * dur))) for _ in range(traces)]
    st, so = ragged(parts)
    return TraceSet(np.zeros((1, traces, frames), np.float32), frame_rate=30.0,
                    spike_times=st, spike_offsets=so, source="simulated")


def time_training(model, batch: int, window: int, steps: int, device):
    import numpy as np
    import torch

    from cabench.generators.conditional_data import ConditionalData, PairSampler, Segment
    from cabench.generators.conditional_train import ConditionalTrainConfig, ConditionalTrainer

    rng = np.random.default_rng(0)
    segs = [Segment("x", rng.standard_normal(20 * window).astype(np.float32),
                    (rng.random(20 * window) < 0.03).astype(np.float32), 4, 1.0, 15.0)
            for _ in range(4)]
    data = ConditionalData(train=segs, val=[], window=window, frame_rate=30.0,
                           trace_scale=1.0, nu_median=1.0)
    tr = ConditionalTrainer(model, ConditionalTrainConfig(batch_size=batch, window=window),
                            device)
    sampler = PairSampler(data, segs, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tr.train_step(sampler)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.train_step(sampler)
    sync()
    return steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--devices", default=None, help="comma list [cpu, plus cuda if available]")
    ap.add_argument("--skip-train", action="store_true")
    a = ap.parse_args()

    import torch

    from cabench.generators.calciumgan import n_parameters
    from cabench.generators.conditional import ConditionalConfig, build_conditional
    from cabench.generators.conditional_train import generate_traces

    if a.threads:
        torch.set_num_threads(a.threads)
    # nu_gain as a run on the ground truth sets it (sqrt(30 Hz) / (95.4 x trace scale 4.08))
    model = ConditionalConfig().replace(channels=a.channels, nu_gain=0.0141)
    G, D = build_conditional(model, 0)
    devices = a.devices.split(",") if a.devices else \
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"model: generator {n_parameters(G):,} / critic {n_parameters(D):,} parameters, "
          f"receptive field {model.receptive_field} / {model.critic_field} frames; "
          f"torch threads {torch.get_num_threads()}")
    spikes = spike_set(a.traces, a.frames)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run", model)
        for dev in devices:
            generate_traces(run, spike_set(2, 256), device=dev)  # warm-up
            t0 = time.perf_counter()
            out = generate_traces(run, spikes, batch_size=a.gen_batch, device=dev)
            dt = time.perf_counter() - t0
            print(f"generate {dev}: {a.traces} traces x {a.frames} frames in {dt:.2f} s = "
                  f"{out.traces.size / dt:,.0f} trace-frames/s (batch {a.gen_batch})")
    if not a.skip_train:
        for dev in devices:
            sps = time_training(model, a.batch, a.window, a.train_steps, torch.device(dev))
            print(f"train {dev}: {sps:.3f} generator steps/s (batch {a.batch}, window "
                  f"{a.window}, 5 critic updates each)")


if __name__ == "__main__":
    main()
