"""CalciumGAN: network shapes, phase shuffle, gradient penalty, training, exact resume, generate,
one-line CLI errors and a two-process (gloo) run. Tiny networks on small simulations (CPU)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from cabench import TraceSet
from cabench.generators.calciumgan import (
    Critic,
    GanConfig,
    Generator,
    build,
    gradient_penalty,
    n_parameters,
    phase_shuffle,
)
from cabench.generators.gan_train import CHECKPOINT, CONFIG, LOG, train_gan

TINY = dict(latent=8, start_channels=8, gen_channels=(16, 16), critic_channels=(8, 16, 16),
            phase_shuffle=4)
TINY_CLI = ["--latent", "8", "--gen-channels", "16,16", "--critic-channels", "8,16,16"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    import warnings

    from cabench.simulators import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = simulate(preset="GCaMP6s", cells=8, duration=80, frame_rate=20, seed=1, noise=2)
    path = tmp_path_factory.mktemp("gan") / "sim.h5"
    ts.save(path)
    return path, ts


def test_paper_sizes_and_tiny_shapes():
    g, d = build(GanConfig(), seed=0)
    assert abs(n_parameters(g) - 4.38e6) < 0.01e6 and abs(n_parameters(d) - 4.11e6) < 0.01e6
    cfg = GanConfig(n_cells=5, window=64, **TINY)
    g, d = Generator(cfg), Critic(cfg)
    with torch.no_grad():
        x = g(torch.randn(3, 8))
    assert x.shape == (3, 5, 64) and float(x.min()) > 0 and float(x.max()) < 1
    assert d(x).shape == (3,)
    assert GanConfig.from_dict(cfg.to_dict()) == cfg


def test_window_must_fit_depth():
    from cabench.errors import CabenchError

    with pytest.raises(CabenchError, match="multiple of"):
        GanConfig(n_cells=3, window=100)


def test_phase_shuffle_shape_and_range():
    x = torch.arange(40.0).view(1, 1, 40).repeat(2, 3, 1)
    seen = set()
    for s in range(60):
        y = phase_shuffle(x, 5, torch.Generator().manual_seed(s))
        assert y.shape == x.shape
        # interior frames are x shifted by one k in [-5, 5], the same for the whole batch
        k = int(y[0, 0, 20] - x[0, 0, 20]) * -1
        assert -5 <= k <= 5
        assert torch.equal(y[:, :, 5:35], x[:, :, 5 - k : 35 - k])
        seen.add(k)
    assert len(seen) > 5


def test_gradient_penalty_matches_hand_computation():
    torch.manual_seed(0)
    w = torch.randn(2, 6)

    def critic(x):  # f(x) = sum(w * x^2): gradient 2 w x
        return (w * x**2).sum(dim=(1, 2))

    real, fake, eps = torch.randn(4, 2, 6), torch.randn(4, 2, 6), torch.rand(4)
    gp = gradient_penalty(critic, real, fake, eps)
    x_hat = eps.view(-1, 1, 1) * real + (1 - eps.view(-1, 1, 1)) * fake
    norms = (2 * w * x_hat).flatten(1).norm(dim=1)
    assert torch.allclose(gp, ((norms - 1) ** 2).mean(), rtol=1e-5)
    # differentiable: its gradient w.r.t. the critic's parameters exists
    w.requires_grad_(True)
    gradient_penalty(critic, real, fake, eps).backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def _train(sim_path, run_dir, steps, resume=False, **kw):
    return train_gan([sim_path], run_dir, window=64, steps=steps, resume=resume, device="cpu",
                     gan_overrides=TINY,
                     train_overrides=dict(batch_size=8, log_every=10, checkpoint_every=25,
                                          seed=3, **kw))


def test_tiny_gan_trains_and_logs(sim, tmp_path):
    trainer = _train(sim[0], tmp_path / "run", 100)
    assert trainer.step == 100
    with open(tmp_path / "run" / LOG) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(10, 101, 10))
    for r in rows:
        assert all(np.isfinite(float(r[k])) for k in
                   ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein",
                    "val_wasserstein"))
    cfg = json.loads((tmp_path / "run" / CONFIG).read_text())
    assert cfg["training"]["steps"] == 100 and cfg["data"]["n_cells"] == 8
    assert cfg["data"]["val_windows"] > 0
    # validation frames come after every training frame
    assert cfg["data"]["train_frames"] + cfg["data"]["val_frames"] == sim[1].n_frames


def test_resume_is_bit_for_bit(sim, tmp_path):
    straight = _train(sim[0], tmp_path / "a", 40)
    _train(sim[0], tmp_path / "b", 20)
    resumed = _train(sim[0], tmp_path / "b", 40, resume=True)
    assert resumed.step == 40
    assert json.loads((tmp_path / "b" / "config.json").read_text())["training"]["steps"] == 40
    for m in ("G", "D"):
        a, b = getattr(straight, m).state_dict(), getattr(resumed, m).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    logs = []
    for run in ("a", "b"):
        with open(tmp_path / run / LOG) as f:
            logs.append([{k: v for k, v in r.items() if k != "seconds"}
                         for r in csv.DictReader(f)])
    assert logs[0] == logs[1] and len(logs[0]) > 1


def test_generate_writes_gan_trace_file(sim, tmp_path, run):
    path, ts = sim
    res = run("train-gan", path, "-o", tmp_path / "run", "--window", 64, "--steps", 5,
              "--batch-size", 4, *TINY_CLI, "-q")
    assert res.exit_code == 0, res.output
    res = run("generate", tmp_path / "run", "-o", tmp_path / "gan.h5", "--samples", 6,
              "--seed", 2)
    assert res.exit_code == 0, res.output
    g = TraceSet.load(tmp_path / "gan.h5")
    assert g.source == "gan" and g.traces.shape == (6, 8, 64) and g.traces.dtype == np.float32
    assert g.frame_rate == ts.frame_rate and g.seed == 2
    assert g.params["step"] == 5 and g.params["model"]["n_cells"] == 8
    assert ts.traces.min() <= g.traces.min() and g.traces.max() <= ts.traces.max()
    # the same seed gives the same traces
    run("generate", tmp_path / "run", "-o", tmp_path / "gan2.h5", "--samples", 6, "--seed", 2)
    assert np.array_equal(TraceSet.load(tmp_path / "gan2.h5").traces, g.traces)


def _bad_inputs(tmp_path, sim_path):
    short = tmp_path / "short.h5"
    TraceSet(np.zeros((1, 3, 50), np.float32), frame_rate=10).save(short)
    nan = tmp_path / "nan.h5"
    x = np.random.default_rng(0).random((1, 3, 200)).astype(np.float32)
    x[0, 1, 5:8] = np.nan
    TraceSet(x, frame_rate=10).save(nan)
    return short, nan


def test_bad_inputs_give_one_line_errors(sim, tmp_path, run):
    short, nan = _bad_inputs(tmp_path, sim[0])
    cases = [
        (["train-gan", short, "-o", tmp_path / "r1", "--window", 64, *TINY_CLI],
         "too few frames"),
        (["train-gan", nan, "-o", tmp_path / "r2", "--window", 64, *TINY_CLI],
         "3 NaN value"),
        (["generate", tmp_path / "missing", "-o", tmp_path / "x.h5", "--samples", 1],
         "not a GAN run folder"),
    ]
    for args, msg in cases:
        res = run(*args)
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0] and lines[0].startswith("Error:"), lines
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()

    rd = tmp_path / "run"
    assert run("train-gan", sim[0], "-o", rd, "--window", 64, "--steps", 2, "--batch-size", 4,
               *TINY_CLI, "-q").exit_code == 0
    res = run("train-gan", sim[0], "-o", rd, "--window", 64, "--steps", 2, *TINY_CLI)
    assert res.exit_code == 2 and "--resume" in res.output
    (rd / CHECKPOINT).write_bytes(b"not a checkpoint")
    for args in (["generate", rd, "-o", tmp_path / "x.h5", "--samples", 1],
                 ["train-gan", sim[0], "-o", rd, "--resume", "--steps", 4]):
        res = run(*args)
        assert res.exit_code == 2 and "corrupt" in res.output
        assert len(res.output.strip().splitlines()) == 1
    (rd / CHECKPOINT).unlink()
    res = run("generate", rd, "-o", tmp_path / "x.h5", "--samples", 1)
    assert res.exit_code == 2 and "no checkpoint" in res.output
    cfg = json.loads((rd / CONFIG).read_text())
    cfg["format_version"] = 99
    (rd / CONFIG).write_text(json.dumps(cfg))
    res = run("generate", rd, "-o", tmp_path / "x.h5", "--samples", 1)
    assert res.exit_code == 2 and "format version 99" in res.output
    assert not (tmp_path / "x.h5").exists()


def _ddp_worker(rank, world, init_file, sim_path, run_dir, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        tr = train_gan([sim_path], run_dir, window=64, steps=6, device="cpu",
                       gan_overrides=TINY,
                       train_overrides=dict(batch_size=4, log_every=2, checkpoint_every=3))
        torch.save({"G": tr.G.state_dict(), "D": tr.D.state_dict()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_run_keeps_ranks_identical(sim, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(sim[0]), str(tmp_path / "run"),
                                str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for m in ("G", "D"):
        assert all(torch.equal(a[m][k], b[m][k]) for k in a[m])
    # trained (not the initial weights) and only rank 0 wrote the run folder
    g0, _ = build(GanConfig(n_cells=8, window=64, **TINY), seed=0)
    assert not torch.equal(g0.state_dict()["dense.weight"], a["G"]["dense.weight"])
    rows = (tmp_path / "run" / LOG).read_text().splitlines()
    assert len(rows) == 1 + 3
    assert json.loads((tmp_path / "run" / CONFIG).read_text())["world_size"] == 2
