"""Spike-conditioned CalciumGAN: shapes for any length, causality, gradient penalty, the
ground-truth pipeline (resampling, NaN, held-out datasets), exact resume, generation round trip
and one-line CLI errors. Tiny networks on small synthetic CASCADE-like folders (CPU)."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from cabench import TraceSet
from cabench.conditions import band_limit
from cabench.errors import CabenchError
from cabench.generators.calciumgan import gradient_penalty
from cabench.generators.conditional import (
    INDICATORS,
    ConditionalConfig,
    ConditionalCritic,
    ConditionalGenerator,
    build_conditional,
    slow_noise,
)
from cabench.generators.conditional_data import (
    PairSampler,
    load_recordings,
    prepare_conditional,
    split_datasets,
)
from cabench.generators.conditional_train import (
    generate_traces,
    run_kind,
    train_conditional,
)
from cabench.generators.gan_train import CONFIG, LOG
from cabench.noise_level import noise_level_nu

TINY = dict(channels=8, dilations=(1, 2), noise_channels=2, latent=2, embed=2,
            critic_channels=(4, 8), lookahead=1)
TINY_CLI = ["--channels", "8", "--dilations", "1,2", "--critic-channels", "4,8"]
DATASETS = {"DS01-OGB1-m-V1": 30.0, "DS06-GCaMP6f-zf-aDp": 60.0, "DS33-Interneurons2023-m-V1":
            30.0, "DS11-GCaMP6f-m-V1": 30.0}


def _write_cascade(path: Path, recordings: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    cells = np.empty((1, len(recordings)), dtype=object)
    for i, (t, y, spikes_s) in enumerate(recordings):
        cells[0, i] = {"fluo_time": t[None, :], "fluo_mean": y[:, None],
                       "events_AP": (spikes_s * 1e4)[:, None]}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"CAttached": cells})


def _recording(rng, rate: float, seconds: float, nan_at: int | None = None):
    n = int(seconds * rate)
    t = 3.0 + np.arange(n) / rate
    spikes = np.sort(rng.uniform(t[0], t[-1], rng.poisson(0.8 * seconds)))
    kernel_t = np.arange(n) / rate
    y = np.zeros(n)
    for s in spikes:  # exponential transients, 0.2 dF/F per spike, 0.5 s decay
        k = kernel_t - (s - t[0])
        y += np.where(k >= 0, 0.2 * np.exp(-np.clip(k, 0, None) / 0.5), 0.0)
    y += 0.02 * rng.standard_normal(n)
    if nan_at is not None:
        y[nan_at : nan_at + 3] = np.nan
    return t, y, spikes


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    """A ground-truth root with four dataset folders, two neurons each."""
    root = tmp_path_factory.mktemp("gt")
    rng = np.random.default_rng(0)
    for name, rate in DATASETS.items():
        for cell in range(2):
            recs = [_recording(rng, rate, 12.0, nan_at=100 if cell == 1 else None)]
            _write_cascade(root / name / f"cell_{cell}.mat", recs)
    return root


def _train(gt, run_dir, steps, resume=False, **kw):
    train = dict(batch_size=4, window=48, log_every=5, checkpoint_every=10, seed=3,
                 val_datasets=["DS11-*"])
    train.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_conditional([gt], run_dir, steps=steps, resume=resume, device="cpu",
                                 model_overrides=TINY, train_overrides=train)


@pytest.fixture(scope="module")
def cond_run(gt, tmp_path_factory) -> Path:
    rd = tmp_path_factory.mktemp("cond") / "run"
    _train(gt, rd, 4)
    return rd


def _inputs(b: int, n: int, cfg: ConditionalConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(b, n, generator=g) < 0.1).float()
    return (spikes, torch.zeros(b, dtype=torch.long), torch.full((b,), 1.5),
            torch.randn(b, cfg.noise_channels, n, generator=g),
            torch.randn(b, cfg.latent, generator=g))


# --- networks -----------------------------------------------------------------------------------
def test_default_sizes_and_receptive_field():
    cfg = ConditionalConfig()
    G, D = build_conditional(cfg, seed=0)
    n_g = sum(p.numel() for p in G.parameters())
    n_d = sum(p.numel() for p in D.parameters())
    assert 100_000 <= n_g <= 500_000 and 100_000 <= n_d <= 500_000
    assert cfg.receptive_field >= 256 and cfg.critic_field >= 256
    assert ConditionalConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (dict(kernel=4), dict(channels=0), dict(dilations=()),
                dict(indicators=("GCaMP6f",)), dict(lookahead=-1), dict(nu_gain=-1.0),
                dict(nu_gain=float("nan")), dict(nu_gain=0.1, noise_channels=0),
                dict(noise_stride=0)):
        with pytest.raises(CabenchError):
            ConditionalConfig(**bad)
    with pytest.raises(CabenchError, match="unknown conditional GAN config keys"):
        ConditionalConfig.from_dict({"channel": 3})


@pytest.mark.parametrize("nu_gain", [0.0, 0.02])
@pytest.mark.parametrize("n", [1, 2, 7, 48, 129, 600])
def test_output_length_equals_input_length(n, nu_gain):
    cfg = ConditionalConfig(**TINY, nu_gain=nu_gain)
    G, D = build_conditional(cfg, seed=1)
    s, ind, nu, noise, z = _inputs(3, n, cfg)
    with torch.no_grad():
        y = G(s, ind, nu, noise, z)
        score = D(y, s, ind, nu)
    assert y.shape == (3, n) and torch.isfinite(y).all()
    assert score.shape == (3,) and torch.isfinite(score).all()


@pytest.mark.parametrize("nu_gain", [0.0, 0.02])
def test_generator_is_causal_up_to_lookahead(nu_gain):
    cfg = ConditionalConfig(**{**TINY, "lookahead": 2, "nu_gain": nu_gain})
    G = ConditionalGenerator(cfg)
    n, k = 80, 40
    s, ind, nu, noise, z = _inputs(1, n, cfg)
    s.zero_()
    s2 = s.clone()
    s2[0, k] = 3.0
    with torch.no_grad():
        diff = (G(s2, ind, nu, noise, z) - G(s, ind, nu, noise, z)).abs()[0]
    assert torch.all(diff[: k - 2] == 0)  # nothing changes before k - lookahead
    assert diff[k - 2] > 0 and diff[k:].max() > 0


def test_noise_path_gives_the_conditioning_noise_level_nu():
    # with the last layer at zero (signal 0, gain 1) the trace is white noise whose nu, as
    # measured by noise_level_nu, is the nu the generator was given
    rate, scale = 30.0, 2.0
    cfg = ConditionalConfig(**TINY, nu_gain=np.sqrt(rate) / (95.4 * scale))
    G = ConditionalGenerator(cfg)
    torch.nn.init.zeros_(G.out.weight)
    torch.nn.init.zeros_(G.out.bias)
    s, ind, _, noise, z = _inputs(1, 20_000, cfg)
    for nu in (0.3, 1.0, 4.0):
        with torch.no_grad():
            y = G(s, ind, torch.tensor([nu]), noise, z).numpy() * scale
        assert noise_level_nu(y[None], rate)[0] == pytest.approx(nu, rel=0.03)


def test_white_noise_enters_only_at_the_output():
    cfg = ConditionalConfig(**TINY, nu_gain=0.05, noise_stride=4)
    G = ConditionalGenerator(cfg)
    s, ind, nu, noise, z = _inputs(2, 64, cfg)
    white = torch.zeros_like(noise)
    white[:, 0] = noise[:, 0]

    def out(k):
        with torch.no_grad():
            return G(s, ind, nu, noise - white + k * white, z)

    # the first noise channel enters linearly, scaled per frame by a gain it does not change
    assert torch.allclose(out(2) - out(0), 2 * (out(1) - out(0)), atol=1e-5)
    assert not torch.allclose(out(1), out(0))
    # the trunk's noise is piecewise linear between knots every noise_stride frames
    slow = slow_noise(noise, 4)
    assert torch.equal(slow[..., ::4], noise[..., ::4])
    second = slow.diff(n=2, dim=-1)[..., :60]
    off_knot = torch.ones(60, dtype=torch.bool)
    off_knot[3::4] = False  # second difference at frame j spans j .. j + 2
    assert second[..., off_knot].abs().max() < 1e-5


def test_spike_basis_is_the_causal_exponential_filter():
    from cabench.generators.conditional import _SpikeBasis

    basis = _SpikeBasis((2.0, 10.0))
    s = torch.zeros(1, 40)
    s[0, 3] = 2.0
    x = basis(s)[0].numpy()
    k = np.arange(40) - 3
    assert np.array_equal(x[0], s[0].numpy())
    for row, tau in ((1, 2.0), (2, 10.0)):
        want = np.where((k >= 0) & (k <= 5 * tau), 2.0 * np.exp(-np.clip(k, 0, None) / tau), 0)
        assert np.allclose(x[row], want, atol=1e-6)


def test_conditioning_changes_the_output():
    cfg = ConditionalConfig(**TINY)
    G = ConditionalGenerator(cfg)
    s, ind, nu, noise, z = _inputs(2, 50, cfg)
    with torch.no_grad():
        base = G(s, ind, nu, noise, z)
        other_ind = G(s, ind + 4, nu, noise, z)
        other_nu = G(s, ind, nu * 3, noise, z)
    assert not torch.allclose(base, other_ind) and not torch.allclose(base, other_nu)


def test_gradient_penalty_known_value_and_per_window_gradients():
    # linear critic f(x) = sum(w * x) * spikes_sum: gradient w * spikes_sum, known norm
    w = torch.tensor([0.3, -0.4, 1.2])
    real, fake = torch.randn(2, 3), torch.randn(2, 3)
    spikes = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0]])

    def critic(x, spikes):
        return (x * w).sum(1) * spikes.sum(1)

    gp = gradient_penalty(critic, real, fake, torch.tensor([0.2, 0.7]), spikes=spikes)
    norm = float(w.norm())
    assert gp.item() == pytest.approx(((norm - 1) ** 2 + (2 * norm - 1) ** 2) / 2, rel=1e-6)
    # the real critic: batch gradients equal window-by-window autograd (no mixing of windows)
    cfg = ConditionalConfig(**TINY)
    D = ConditionalCritic(cfg)
    s, ind, nu, _, _ = _inputs(3, 40, cfg)
    x = torch.randn(3, 40)
    per = []
    for i in range(3):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(D(xi, s[i : i + 1], ind[i : i + 1], nu[i : i + 1]).sum(), xi)
        per.append(((gi.norm() - 1) ** 2).item())
    got = gradient_penalty(D, x, x, torch.ones(3), spikes=s, indicator=ind, nu=nu)
    assert got.item() == pytest.approx(np.mean(per), rel=1e-5)


# --- data ---------------------------------------------------------------------------------------
def test_pipeline_resamples_splits_and_holds_out_whole_datasets(gt):
    recs = load_recordings([gt])
    assert sorted({n for n, _ in recs}) == sorted(DATASETS)
    data = prepare_conditional(recs, 48, 30.0, ["DS06-*", "DS33-Interneurons2023-m-V1"],
                               INDICATORS)
    assert data.datasets(data.val) == ["DS06-GCaMP6f-zf-aDp", "DS33-Interneurons2023-m-V1"]
    assert set(data.datasets(data.train)).isdisjoint(data.datasets(data.val))
    for seg in data.train + data.val:
        assert np.isfinite(seg.trace).all() and len(seg.trace) >= 48
    # 12 s at 60 Hz became 360 frames at 30 Hz; the NaN stretch split cell 1 in two
    ds06 = [s for s in data.val if s.dataset.startswith("DS06")]
    lens = sorted(len(s.trace) for s in ds06)
    assert len(lens) == 3 and lens[2] == 360 and 354 <= lens[0] + lens[1] <= 359
    # spike counts per frame keep every spike of the NaN-free recording
    full = [s for s in ds06 if len(s.trace) > 300][0]
    ts06 = [ts for n, ts in recs if n.startswith("DS06")][0]
    assert full.spikes.sum() == ts06.spike_counts().sum()
    # indicators from folder names; DS33 names none
    by = {s.dataset: INDICATORS[s.indicator] for s in data.train + data.val}
    assert by["DS01-OGB1-m-V1"] == "OGB-1" and by["DS06-GCaMP6f-zf-aDp"] == "GCaMP6f"
    assert by["DS33-Interneurons2023-m-V1"] == "unknown"
    # nu of 0.02 white noise at 30 Hz: 95.4 * 0.02 / sqrt(30) ~ 0.35 (transients add a little)
    assert all(0.3 < s.nu < 0.5 for s in data.train if s.dataset.startswith("DS01"))
    # the sampler only ever returns training windows, bit-exact copies of the source
    sampler = PairSampler(data, data.train, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    b = sampler.batch(64, g)
    train_traces = [s.trace / np.float32(data.trace_scale) for s in data.train]
    for row in b["trace"].numpy():
        assert any(_contains(t, row) for t in train_traces)
    assert torch.equal(sampler.batch(8, torch.Generator().manual_seed(5))["spikes"],
                       sampler.batch(8, torch.Generator().manual_seed(5))["spikes"])


def _contains(long: np.ndarray, window: np.ndarray) -> bool:
    hits = np.flatnonzero(long[: len(long) - len(window) + 1] == window[0])
    return any(np.array_equal(long[h : h + len(window)], window) for h in hits)


def test_validation_choice_errors():
    names = ["DS01-a", "DS02-b"]
    assert split_datasets(names, None) == {"DS02-b"}  # the default patterns
    with pytest.raises(CabenchError, match="matches none"):
        split_datasets(names, ["DS99-*"])
    with pytest.raises(CabenchError, match="every dataset"):
        split_datasets(names, ["DS*"])


# --- training -----------------------------------------------------------------------------------
def test_train_logs_and_records_the_run(cond_run, gt):
    cfg = json.loads((cond_run / CONFIG).read_text())
    assert cfg["kind"] == "conditional" and run_kind(cond_run) == "conditional"
    d = cfg["data"]
    assert d["val_datasets"] == ["DS11-GCaMP6f-m-V1"] and "DS11-GCaMP6f-m-V1" not in \
        d["train_datasets"] and d["frame_rate"] == 30.0 and d["trace_scale"] > 0
    assert cfg["training"]["steps"] == 4 and cfg["seed"] == 3
    assert cfg["parameters"]["generator"] > 0 and "torch" in cfg["versions"]
    with open(cond_run / LOG) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [4]
    assert all(np.isfinite(float(rows[0][k])) for k in ("critic_loss", "val_wasserstein"))


def test_resume_is_bit_for_bit(gt, tmp_path):
    straight = _train(gt, tmp_path / "a", 6)
    _train(gt, tmp_path / "b", 3, checkpoint_every=3)
    resumed = _train(gt, tmp_path / "b", 6, resume=True)
    assert resumed.step == 6
    assert json.loads((tmp_path / "b" / CONFIG).read_text())["training"]["steps"] == 6
    for m in ("G", "D"):
        a, b = getattr(straight, m).state_dict(), getattr(resumed, m).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CabenchError, match="--resume"):
        _train(gt, tmp_path / "a", 2)


def test_reconstruction_is_huber_loss_in_noise_sds(gt):
    from cabench.generators.conditional_train import ConditionalTrainConfig, ConditionalTrainer

    model = ConditionalConfig(**TINY, nu_gain=0.01)
    trainer = ConditionalTrainer(model, ConditionalTrainConfig(recon_weight=1.0),
                                 torch.device("cpu"))
    nu = torch.tensor([0.5, 2.0])
    trace = torch.zeros(2, 4)
    # deviations of 1 and 5 noise SDs: Huber (threshold 3) gives 0.5 and 3 x (5 - 1.5)
    signal = -torch.tensor([[1.0], [5.0]]) * 0.01 * nu[:, None] * torch.ones(2, 4)
    got = trainer._reconstruction(signal, dict(trace=trace, nu=nu))
    assert float(got) == pytest.approx((0.5 + 3 * 3.5) / 2)
    with pytest.raises(CabenchError, match="noise path"):
        ConditionalTrainer(model.replace(nu_gain=0.0), ConditionalTrainConfig(recon_weight=1.0),
                           torch.device("cpu"))
    with pytest.raises(CabenchError, match="recon_weight"):
        ConditionalTrainConfig(recon_weight=-1.0)


def _trained(model, sampler, steps: int, **train):
    """A trainer of ``model`` after ``steps`` small steps (batch 8, lr 1e-3, one critic update
    each, seed 1) and the losses of its last step."""
    from cabench.generators.conditional_train import ConditionalTrainConfig, ConditionalTrainer

    t = ConditionalTrainer(model, ConditionalTrainConfig(batch_size=8, lr=1e-3, n_critic=1,
                                                         seed=1, **train), torch.device("cpu"))
    logged = {}
    for _ in range(steps):
        logged = t.train_step(sampler)
    return t, logged


def test_reconstruction_term_pulls_the_signal_to_the_real_trace(gt):
    data = prepare_conditional(load_recordings([gt]), 48, vocabulary=INDICATORS)
    sampler = PairSampler(data, data.train, torch.device("cpu"))
    model = ConditionalConfig(**TINY, nu_gain=0.05)
    fixed = sampler.batch(64, torch.Generator().manual_seed(99))
    after = {}
    for w in (0.0, 100.0):
        t, _ = _trained(model, sampler, 80, recon_weight=w)
        with torch.no_grad():
            _, signal = t._fake(fixed, torch.Generator().manual_seed(5), with_signal=True)
            after[w] = float(t._reconstruction(signal, fixed))
    assert after[100.0] < 0.5 * after[0.0], after


def test_nu_log_ratio_measures_noise_like_the_noise_level():
    from cabench.generators.conditional_train import ConditionalTrainer
    from cabench.noise_level import noise_level_nu

    rng = np.random.default_rng(3)
    real = rng.normal(0, 0.02, (3, 600)).astype(np.float32)
    real[:, 300:] += 0.5  # a step: one large difference, ignored by the median
    fake = real * np.array([[1.0], [2.0], [0.5]], np.float32)
    got = ConditionalTrainer._nu_log_ratio(torch.from_numpy(fake),
                                           dict(trace=torch.from_numpy(real)))
    expected = np.log(noise_level_nu(fake, 30.0) / noise_level_nu(real, 30.0))  # 599 diffs
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(got.numpy(), np.log([1.0, 2.0, 0.5]), atol=1e-5)


def test_nu_term_calibrates_the_generated_noise_level(gt):
    from cabench.generators.conditional_train import ConditionalTrainConfig, ConditionalTrainer

    data = prepare_conditional(load_recordings([gt]), 48, vocabulary=INDICATORS)
    sampler = PairSampler(data, data.train, torch.device("cpu"))
    # noise gain 3x too large per unit nu: generated windows start ~3x too noisy
    model = ConditionalConfig(**TINY, nu_gain=3 * math.sqrt(30.0) / (95.4 * data.trace_scale))
    fixed = sampler.batch(64, torch.Generator().manual_seed(99))
    after = {}
    for w in (0.0, 10.0):
        t, logged = _trained(model, sampler, 120, nu_weight=w)
        with torch.no_grad():
            fake = t._fake(fixed, torch.Generator().manual_seed(5))
            after[w] = float(t._nu_log_ratio(fake, fixed).median())
        assert "nu_ratio" in logged
    # the median log ratio (the bias; single 48-frame windows scatter by ~0.2 either way)
    assert abs(after[10.0]) < 0.1 and after[0.0] > 0.2, after
    with pytest.raises(CabenchError, match="nu_weight"):
        ConditionalTrainConfig(nu_weight=float("nan"))
    with pytest.raises(CabenchError, match="noise path"):
        ConditionalTrainer(model.replace(nu_gain=0.0), ConditionalTrainConfig(nu_weight=1.0),
                           torch.device("cpu"))


def test_init_from_starts_a_new_run_from_another_runs_weights(gt, cond_run, tmp_path):
    src = json.loads((cond_run / CONFIG).read_text())
    rd = tmp_path / "tuned"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = train_conditional([gt / "DS01-OGB1-m-V1"], rd, steps=0, device="cpu",
                                    init_from=cond_run,
                                    train_overrides=dict(window=48, recon_weight=1.0))
    src_ckpt = torch.load(cond_run / "checkpoint.pt", weights_only=True)
    state = trainer.G.state_dict()
    assert all(torch.equal(state[k], v) for k, v in src_ckpt["generator"].items())
    cfg = json.loads((rd / CONFIG).read_text())
    assert cfg["init_from"] == dict(run=str(cond_run), step=4,
                                    data_fingerprint=src["data"]["fingerprint"])
    assert cfg["model"] == src["model"] and trainer.step == 0
    assert cfg["data"]["trace_scale"] == src["data"]["trace_scale"]  # other data, same scale
    assert cfg["data"]["train_datasets"] == ["DS01-OGB1-m-V1"]
    for kw, msg in ((dict(resume=True), "--resume"),
                    (dict(model_overrides=dict(channels=4)), "architecture"),
                    (dict(train_overrides=dict(frame_rate=20.0)), "30 Hz")):
        with pytest.raises(CabenchError, match=msg):
            train_conditional([gt], tmp_path / "x", steps=0, device="cpu", init_from=cond_run,
                              **kw)


def test_run_kind_of_unconditional_and_missing(tmp_path):
    rd = tmp_path / "u"
    rd.mkdir()
    (rd / CONFIG).write_text(json.dumps({"format": "cabench-gan-run", "format_version": 1}))
    assert run_kind(rd) == "unconditional"
    with pytest.raises(CabenchError, match="not a GAN run folder"):
        run_kind(tmp_path / "nothing")


# --- generation ---------------------------------------------------------------------------------
def _spike_set(rate=30.0, trials=2, cells=3, frames=150, seed=0, indicator="GCaMP6s"):
    rng = np.random.default_rng(seed)
    parts = [np.sort(rng.uniform(0, frames / rate, rng.integers(0, 8)))
             for _ in range(trials * cells)]
    from cabench.traceset import ragged

    st, so = ragged(parts)
    return TraceSet(np.zeros((trials, cells, frames), np.float32), frame_rate=rate,
                    spike_times=st, spike_offsets=so, source="simulated",
                    indicator=indicator, cell_names=[f"c{i}" for i in range(cells)])


def test_generate_round_trip_keeps_spikes(cond_run, tmp_path):
    spk = _spike_set()
    out = generate_traces(cond_run, spk, seed=4, batch_size=4)
    assert out.traces.shape == spk.traces.shape and out.traces.dtype == np.float32
    assert np.isfinite(out.traces).all() and out.source == "gan" and out.seed == 4
    assert out.params["indicator"] == "GCaMP6s" and out.params["step"] == 4
    assert out.params["noise_level_nu"] == json.loads(
        (cond_run / CONFIG).read_text())["data"]["nu_median"]
    out.save(tmp_path / "g.h5")
    back = TraceSet.load(tmp_path / "g.h5")
    assert np.array_equal(back.spike_times, spk.spike_times)
    assert np.array_equal(back.spike_offsets, spk.spike_offsets)
    assert np.array_equal(back.binned_spikes(), spk.binned_spikes())
    assert np.array_equal(back.traces, out.traces) and back.cell_names == spk.cell_names
    # the batch size does not change the result (beyond float rounding); the seed does
    assert np.allclose(generate_traces(cond_run, spk, seed=4, batch_size=5).traces,
                       out.traces, rtol=0, atol=1e-5)
    assert np.array_equal(generate_traces(cond_run, spk, seed=4, batch_size=4).traces,
                          out.traces)
    assert not np.array_equal(generate_traces(cond_run, spk, seed=5).traces, out.traces)
    unk = generate_traces(cond_run, _spike_set(indicator="mystery"), seed=4)
    assert unk.params["indicator"] == "unknown" and not np.array_equal(unk.traces, out.traces)
    assert generate_traces(cond_run, spk, indicator="OGB1").params["indicator"] == "OGB-1"


def _power_share_above(x: np.ndarray, rate: float, cutoff_hz: float) -> float:
    """Share of the power of rows ``x`` above ``cutoff_hz``, the line between each row's
    first and last frame removed (band limiting removes the line of its input's ends, so a
    band-limited row keeps a trace of power above the cutoff here)."""
    x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    pos = np.arange(x.shape[1]) / (x.shape[1] - 1)
    power = np.abs(np.fft.rfft(x - x[:, :1] - (x[:, -1:] - x[:, :1]) * pos)) ** 2
    return float(power[:, np.fft.rfftfreq(x.shape[1], 1 / rate) > cutoff_hz].sum() / power.sum())


def test_generate_band_limits_to_a_given_bandwidth(cond_run):
    spk = _spike_set()
    full = generate_traces(cond_run, spk, seed=4)
    low = generate_traces(cond_run, spk, seed=4, bandwidth_hz=5.0)
    assert low.params["bandwidth_hz"] == 5.0 and full.params["bandwidth_hz"] is None
    assert _power_share_above(low.traces, 30.0, 5.05) < 1e-3
    assert _power_share_above(full.traces, 30.0, 5.05) > 0.02
    np.testing.assert_allclose(low.traces, band_limit(full.traces, 30.0, 5.0), atol=1e-5)
    with pytest.raises(CabenchError, match="bandwidth"):
        generate_traces(cond_run, spk, bandwidth_hz=0.0)


def test_low_rate_recordings_train_band_limited_with_their_native_nu(tmp_path):
    from cabench.generators.conditional_train import ConditionalTrainConfig, ConditionalTrainer

    rng = np.random.default_rng(7)
    for name, rate in (("DS01-OGB1-m-V1", 10.0), ("DS11-GCaMP6f-m-V1", 60.0)):
        _write_cascade(tmp_path / name / "cell.mat", [_recording(rng, rate, 40.0)])
    recs = load_recordings([tmp_path])
    data = prepare_conditional(recs, 48, 30.0, ["DS11-*"], INDICATORS)
    (seg,), (fast,) = data.train, data.val
    native = next(ts for n, ts in recs if n.startswith("DS01"))
    assert seg.bandwidth_hz == pytest.approx(5.0, rel=1e-3)
    assert seg.nu == pytest.approx(noise_level_nu(native.traces, native.frame_rate)[0])
    assert fast.bandwidth_hz == pytest.approx(15.0)  # downsampled: the full band at 30 Hz
    sampler = PairSampler(data, data.train, torch.device("cpu"))
    b = sampler.batch(6, torch.Generator().manual_seed(0))
    assert (b["keep"] == 8).all()  # 48 x 5 / 30: bins above 5 Hz go
    model = ConditionalConfig(**TINY, nu_gain=0.05)
    trainer = ConditionalTrainer(model, ConditionalTrainConfig(window=48), torch.device("cpu"))
    with torch.no_grad():
        fake, signal = trainer._fake(b, torch.Generator().manual_seed(1), with_signal=True)
        raw = trainer._fake({k: v for k, v in b.items() if k != "keep"},
                            torch.Generator().manual_seed(1))
    for x in (fake, signal):
        assert _power_share_above(x.numpy(), 30.0, 5.05) < 1e-3
    assert _power_share_above(raw.numpy(), 30.0, 5.05) > 0.1
    np.testing.assert_allclose(fake.numpy(), band_limit(raw.numpy(), 30.0, 5.0), atol=1e-5)


def test_generate_refuses_bad_spikes(cond_run):
    with pytest.raises(CabenchError, match="60 Hz.*30 Hz; resample"):
        generate_traces(cond_run, _spike_set(rate=60.0))
    with pytest.raises(CabenchError, match="no ground-truth spikes"):
        generate_traces(cond_run, TraceSet(np.zeros((1, 1, 10), np.float32), frame_rate=30))
    empty = TraceSet(np.zeros((1, 1, 0), np.float32), frame_rate=30.0,
                     spike_times=np.zeros(0), spike_offsets=np.zeros(2, np.int64))
    with pytest.raises(CabenchError, match="no frames"):
        generate_traces(cond_run, empty)
    nan = _spike_set()
    nan.spike_times[:1] = np.nan
    with pytest.raises(CabenchError, match="NaN spike"):
        generate_traces(cond_run, nan)
    with pytest.raises(CabenchError, match="unknown to the model"):
        generate_traces(cond_run, _spike_set(), indicator="GFP")
    with pytest.raises(CabenchError, match="noise level"):
        generate_traces(cond_run, _spike_set(), noise_level=-1)
    silent = TraceSet(np.zeros((1, 1, 20), np.float32), frame_rate=30.0,
                      spike_times=np.zeros(0), spike_offsets=np.zeros(2, np.int64))
    with pytest.raises(CabenchError, match="empty"):
        generate_traces(cond_run, silent)


# --- command line -------------------------------------------------------------------------------
def test_cli_train_and_generate(gt, tmp_path, run):
    rd = tmp_path / "run"
    res = run("train-gan", "--conditional", gt, "-o", rd, "--window", 48, "--steps", 2,
              "--batch-size", 4, "--val-datasets", "DS11-*", *TINY_CLI, "-q")
    assert res.exit_code == 0, res.output
    assert run_kind(rd) == "conditional"
    res = run("train-gan", gt, "-o", rd, "--resume", "--steps", 3, "-q")  # kind from the run
    assert res.exit_code == 0, res.output
    with open(rd / LOG) as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [2, 3]
    # the new target is stored, so a plain --resume would not stop at the first one
    assert json.loads((rd / CONFIG).read_text())["training"]["steps"] == 3
    spk = _spike_set()
    spk.save(tmp_path / "spikes.h5")
    res = run("generate", rd, "--spikes", tmp_path / "spikes.h5", "-o", tmp_path / "g.h5",
              "--seed", 1, "--indicator", "GCaMP6f", "--noise-level", 2.0)
    assert res.exit_code == 0, res.output
    g = TraceSet.load(tmp_path / "g.h5")
    assert g.traces.shape == spk.traces.shape and np.array_equal(g.spike_times, spk.spike_times)
    assert g.params["noise_level_nu"] == 2.0 and g.params["indicator"] == "GCaMP6f"
    assert g.params["step"] == 3 and g.seed == 1 and g.params["bandwidth_hz"] is None
    res = run("generate", rd, "--spikes", tmp_path / "spikes.h5", "-o", tmp_path / "b.h5",
              "--seed", 1, "--indicator", "GCaMP6f", "--noise-level", 2.0, "--bandwidth", 5)
    assert res.exit_code == 0, res.output
    b = TraceSet.load(tmp_path / "b.h5")
    assert b.params["bandwidth_hz"] == 5.0
    np.testing.assert_allclose(b.traces, band_limit(g.traces, 30.0, 5.0), atol=1e-5)


def test_cli_one_line_errors(gt, cond_run, tmp_path, run):
    from cabench.generators.gan_train import train_gan

    sim = TraceSet(np.random.default_rng(0).random((1, 2, 64)).astype(np.float32),
                   frame_rate=30.0)
    sim.save(tmp_path / "sim.h5")
    uncond = tmp_path / "uncond"
    train_gan([tmp_path / "sim.h5"], uncond, window=32, steps=0, device="cpu",
              gan_overrides=dict(latent=4, start_channels=4, gen_channels=(4,),
                                 critic_channels=(4,), phase_shuffle=0),
              train_overrides=dict(batch_size=2, val_fraction=0))
    _spike_set().save(tmp_path / "spikes.h5")
    _spike_set(rate=20.0).save(tmp_path / "spikes20.h5")
    TraceSet(np.zeros((1, 1, 10), np.float32), frame_rate=30.0).save(tmp_path / "nospk.h5")
    cases = [
        (["generate", cond_run, "-o", tmp_path / "x.h5"], "--spikes"),
        (["generate", cond_run, "-o", tmp_path / "x.h5", "--samples", 2], "--spikes"),
        (["generate", uncond, "--spikes", tmp_path / "spikes.h5", "-o", tmp_path / "x.h5"],
         "unconditional"),
        (["generate", uncond, "--samples", 2, "--bandwidth", 5, "-o", tmp_path / "x.h5"],
         "--bandwidth"),
        (["generate", cond_run, "--spikes", tmp_path / "spikes.h5", "--bandwidth", -1, "-o",
          tmp_path / "x.h5"], "bandwidth must be a positive"),
        (["generate", cond_run, "--spikes", tmp_path / "spikes20.h5", "-o", tmp_path / "x.h5"],
         "20 Hz"),
        (["generate", cond_run, "--spikes", tmp_path / "nospk.h5", "-o", tmp_path / "x.h5"],
         "no ground-truth spikes"),
        (["generate", cond_run, "--spikes", tmp_path / "none.h5", "-o", tmp_path / "x.h5"],
         "no such file"),
        (["train-gan", "--conditional", gt, "-o", tmp_path / "r", "--window", 48,
          "--val-datasets", "DS77-*", *TINY_CLI], "matches none"),
        (["train-gan", "--conditional", gt, "-o", tmp_path / "r", "--window", 5000,
          *TINY_CLI], "no training window"),
        (["train-gan", "--conditional", gt, "-o", tmp_path / "r", "--scaling", "per_cell"],
         "--scaling"),
        (["train-gan", "--conditional", tmp_path / "sim.h5", "-o", tmp_path / "r"],
         "no ground-truth spikes"),
        (["train-gan", gt, "-o", tmp_path / "r", "--frame-rate", 30], "--conditional"),
        (["train-gan", gt, "-o", tmp_path / "r", "--recon-weight", 1], "--conditional"),
        (["train-gan", gt, "-o", tmp_path / "r", "--nu-weight", 1], "--conditional"),
        (["train-gan", "--conditional", gt, "-o", tmp_path / "r", "--init-from", cond_run,
          "--channels", 4], "architecture"),
        (["train-gan", "--conditional", gt, "-o", uncond, "--resume"], "unconditional"),
    ]
    for args, msg in cases:
        res = run(*args)
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0] and lines[0].startswith("Error:"), lines
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "r").exists()
    # generate on the unconditional run still works the old way
    res = run("generate", uncond, "-o", tmp_path / "u.h5", "--samples", 2)
    assert res.exit_code == 0, res.output
