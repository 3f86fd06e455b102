"""Training speed of CalciumGAN: generator steps (each with 5 critic steps) per second.

Default: the paper's configuration (batch 128, window 2048, 102 neurons, 4.38 M + 4.11 M
parameters) on CUDA when available, else the CPU; random data in [0, 1] (speed does not depend
on the values). Prints steps/s, an estimate of the model FLOPs per generator step (multiply-adds
of convolutions and dense layers x 2; backward = 2 x forward; the gradient penalty's double
backward counted as 2 more forward-equivalents of the critic) and, with --peak-tflops, the
FLOP utilisation. Precision: bf16 autocast on CUDA (--precision fp32 to turn off), float32 on CPU.

Usage: python perf/gan_speed.py [--batch 128] [--window 2048] [--cells 102] [--steps 5]
[--warmup 2] [--device auto|cpu|cuda] [--precision bf16|fp32] [--peak-tflops T] [--threads N]
[--small]   (--small: tiny widths, for a quick check on a CPU)
"""

import argparse
import time


def model_flops(cfg):
    """Forward FLOPs per window of generator and critic (2 x multiply-adds)."""
    k = cfg.kernel
    g = cfg.latent * cfg.start_channels * (cfg.window >> cfg.gen_depth)
    widths = [cfg.start_channels, *cfg.gen_channels, cfg.n_cells]
    n = cfg.window >> cfg.gen_depth
    for cin, cout in zip(widths[:-1], widths[1:], strict=True):
        g += cin * cout * k * n  # transposed conv: each input frame touches k outputs
        n *= 2
    g += cfg.n_cells * cfg.n_cells * cfg.window  # per-frame mixing
    d = 0
    widths = [cfg.n_cells, *cfg.critic_channels]
    n = cfg.window
    for cin, cout in zip(widths[:-1], widths[1:], strict=True):
        n //= 2
        d += cin * cout * k * n
    d += cfg.critic_channels[-1] * n
    return 2 * g, 2 * d


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--cells", type=int, default=102)
    ap.add_argument("--steps", type=int, default=5, help="timed generator steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak of the device (e.g. 989 for H100 SXM bf16 dense)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--small", action="store_true", help="tiny widths (quick CPU check)")
    a = ap.parse_args()

    import numpy as np
    import torch

    from cabench.generators.calciumgan import GanConfig, n_parameters
    from cabench.generators.gan_data import GanData, WindowSampler
    from cabench.generators.gan_train import TrainConfig, Trainer, resolve_device

    if a.threads:
        torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    small = dict(latent=8, start_channels=8, gen_channels=(16, 16),
                 critic_channels=(8, 16, 16)) if a.small else {}
    cfg = GanConfig(n_cells=a.cells, window=a.window, **small)
    tc = TrainConfig(batch_size=a.batch, steps=10**9, precision=a.precision)
    x = np.random.default_rng(0).random((a.cells, 4 * a.window)).astype(np.float32)
    data = GanData(train=[x], val=[], window=a.window, frame_rate=30.0, cell_names=None,
                   lo=np.zeros(a.cells), hi=np.ones(a.cells))
    sampler = WindowSampler(data, data.train, dev)
    tr = Trainer(cfg, tc, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        tr.train_step(sampler)
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        tr.train_step(sampler)
    sync()
    dt = (time.perf_counter() - t0) / a.steps
    fg, fd = model_flops(cfg)
    # per critic step: G fwd; D fwd+bwd on real and fake (3 x 2); GP: D fwd + double bwd (~4)
    per_critic = a.batch * (fg + fd * (2 * 3 + 4))
    per_gen = a.batch * (3 * fg + 3 * fd)  # G fwd+bwd, D fwd+bwd (input grads)
    flops = tc.n_critic * per_critic + per_gen
    prec = "bf16 autocast" if tr.bf16 else "fp32"
    print(f"device {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'CPU'}, "
          f"{torch.get_num_threads()} threads), {prec}, torch {torch.__version__}")
    print(f"config: batch {a.batch}, window {a.window}, {a.cells} cells; generator "
          f"{n_parameters(tr.G):,} and critic {n_parameters(tr.D):,} parameters")
    print(f"{1 / dt:.3g} generator steps/s ({dt * 1e3:.1f} ms per step with {tc.n_critic} "
          f"critic steps); ~{flops / 1e12:.3g} TFLOP per step, {flops / dt / 1e12:.3g} TFLOP/s")
    if a.peak_tflops:
        print(f"FLOP utilisation {100 * flops / dt / 1e12 / a.peak_tflops:.1f} % of "
              f"{a.peak_tflops:g} TFLOP/s")


if __name__ == "__main__":
    main()
