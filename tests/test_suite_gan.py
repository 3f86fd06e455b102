"""GAN datasets in suites: TOML keys and refusals, generation cache, GAN-vs-real statistics of
inferred spikes for unconditional runs, ground-truth scoring for conditional runs (a fake
conditional module), leaderboard columns. A tiny CalciumGAN trained for a few steps (CPU)."""

from __future__ import annotations

import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cabench import TraceSet
from cabench.benchmark import gan_datasets as G
from cabench.benchmark import suite as S
from cabench.errors import CabenchError

TINY = dict(latent=8, start_channels=8, gen_channels=(16, 16), critic_channels=(8, 16, 16),
            phase_shuffle=4)
WINDOW = 64
METHODS = '\n[[methods]]\nname = "derivative"\n\n[[methods]]\nname = "oasis-ar1"\n'


def _simulate(seed=1, **kw):
    from cabench.simulators import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate(**{**dict(preset="GCaMP6s", cells=6, duration=64, frame_rate=20,
                                  seed=seed, noise=2), **kw})


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """(run folder, training file, training TraceSet) of a tiny GAN trained for 2 steps."""
    from cabench.generators.gan_train import train_gan

    root = tmp_path_factory.mktemp("ganrun")
    ts = _simulate()
    ts.save(root / "real.h5")
    train_gan([root / "real.h5"], root / "run", window=WINDOW, steps=2, device="cpu",
              gan_overrides=TINY, train_overrides=dict(batch_size=4, seed=3))
    return root / "run", root / "real.h5", ts


def _suite(tmp_path, body, methods=METHODS):
    path = tmp_path / "suite.toml"
    path.write_text('name = "g"\n' + body + methods)
    return S.load_suite(path)


def _gan_body(run, extra=""):
    return f'[[datasets]]\nname = "g1"\ngan = "{run}"\nsamples = 10\nseed = 4\n{extra}'


@pytest.fixture
def counter(monkeypatch):
    """Counts calls of the generation function."""
    calls = []
    real = G.generate
    monkeypatch.setattr(G, "generate", lambda d, key="": calls.append(d.name) or real(d, key))
    return calls


def _fake_conditional(monkeypatch, tmp_path):
    """A fake conditional module: traces = spikes convolved with a decaying kernel plus noise
    (seeded), spikes passed through. Returns its run folder."""
    run = tmp_path / "cond-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format": "fake-conditional"}))
    calls = []

    def generate_traces(run_dir, spikes, seed=0):
        calls.append(seed)
        counts = spikes.binned_spikes()
        kernel = np.exp(-np.arange(40) / (0.5 * spikes.frame_rate))
        x = np.apply_along_axis(lambda c: np.convolve(c, kernel)[: c.size], -1, counts)
        x = x + np.random.default_rng(seed).normal(0, 0.05, x.shape)
        return TraceSet(x.astype(np.float32), spikes.frame_rate, spikes.spike_times,
                        spikes.spike_offsets, frame_times=spikes.frame_times,
                        cell_names=spikes.cell_names, source="gan", seed=seed)

    mod = types.ModuleType("cabench.generators.conditional_train")
    mod.run_kind = lambda d: ("conditional" if "fake-conditional" in
                              (Path(d) / "config.json").read_text() else "unconditional")
    mod.generate_traces = generate_traces
    monkeypatch.setitem(sys.modules, "cabench.generators.conditional_train", mod)
    return run, calls


# --- TOML ----------------------------------------------------------------------------------------
def test_keys_resolve_relative_to_the_suite(tmp_path, gan_run):
    run, real, _ = gan_run
    (tmp_path / "runs").symlink_to(run.parent)
    suite = _suite(tmp_path, _gan_body("runs/run", 'reference = "runs/real.h5"\n'))
    d = suite.datasets[0]
    assert d.gan == str(tmp_path / "runs" / "run") and d.reference == str(tmp_path / "runs/real.h5")
    assert (d.samples, d.seed, d.gan_kind) == (10, 4, "unconditional")
    # the reference defaults to the run's training file
    assert G.reference_paths(_suite(tmp_path, _gan_body(run)).datasets[0]) == [real]


@pytest.mark.parametrize("extra, message", [
    ('spikes = "{real}"\n', "unconditional GAN run: it takes no 'spikes'"),
    ('simulate = {{ cells = 2, duration = 10 }}\n', "takes no 'simulate'"),
    ('noise = 2.0\n', "takes no 'noise'"),
    ('resample = 30.0\n', "takes no 'resample'"),
    ('path = "{real}"\n', "give exactly one of 'path', 'simulate' and 'gan'"),
    ('source = "real"\n', "a GAN dataset has source 'gan', not 'real'"),
    ('reference = "missing.h5"\n', "reference file 'missing.h5' not found"),
    ('samples_n = 3\n', "unknown key(s) samples_n; valid: name, path"),
])
def test_bad_unconditional_datasets(tmp_path, gan_run, extra, message):
    run, real, _ = gan_run
    with pytest.raises(CabenchError) as e:
        _suite(tmp_path, _gan_body(run, extra.format(real=real)))
    assert message in str(e.value)


def test_other_bad_gan_datasets(tmp_path, gan_run):
    run, real, _ = gan_run
    cases = [
        ('[[datasets]]\nname = "a"\ngan = "nope"\n', "gan run folder 'nope' not found"),
        (_gan_body(run).replace("samples = 10", "samples = 0"),
         "samples must be a positive integer"),
        (f'[[datasets]]\nname = "a"\npath = "{real}"\nsamples = 3\n',
         "samples only go with 'gan"),
        (f'[[datasets]]\nname = "a"\ngan = "{run.parent}"\n', "config.json"),
    ]
    for body, message in cases:
        with pytest.raises(CabenchError) as e:
            _suite(tmp_path, body)
        assert message in str(e.value), body
    # the run's training file gone, no reference: the error names it
    moved = tmp_path / "moved"
    moved.mkdir()
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["files"] = [str(tmp_path / "gone.h5")]
    (moved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CabenchError, match=r"training file .*gone.h5 of .* not found"):
        _suite(tmp_path, _gan_body(moved))


def test_conditional_refusals(tmp_path, gan_run, monkeypatch):
    cond, _ = _fake_conditional(monkeypatch, tmp_path)
    run, real, _ = gan_run
    for extra, message in [
        ("", "conditional GAN run: give its input spikes"),
        (f'spikes = "{real}"\nsimulate = {{ cells = 2, duration = 10 }}\n',
         "exactly one of 'spikes"),
        (f'spikes = "{real}"\nsamples = 3\n', "'samples' is for unconditional GAN runs"),
        (f'spikes = "{real}"\nreference = "{real}"\n', "'reference' is for unconditional"),
    ]:
        body = f'[[datasets]]\nname = "c"\ngan = "{cond}"\n{extra}'
        with pytest.raises(CabenchError) as e:
            _suite(tmp_path, body)
        assert message in str(e.value), extra
    # the fake module's run_kind also says the real run is unconditional
    with pytest.raises(CabenchError, match="unconditional GAN run"):
        _suite(tmp_path, _gan_body(run, f'spikes = "{real}"\n'))


# --- unconditional: cache, statistics, leaderboard ----------------------------------------------
def test_unconditional_suite_cache_and_leaderboard(tmp_path, gan_run, counter):
    run, _, real = gan_run
    suite = _suite(tmp_path, _gan_body(run))
    out = tmp_path / "out"
    scores = S.run_suite(suite, out)
    assert counter == ["g1"]
    cached = out / "gan" / "g1" / "000.h5"
    ts = TraceSet.load(cached)
    assert ts.source == "gan" and ts.traces.shape == (10, real.n_cells, WINDOW)
    assert ts.seed == 4 and ts.params["cache_key"] == suite.datasets[0].gan_cache["key"]
    # one case per method, one row per statistics metric, recording and cell "all"
    assert len(scores) == 2 * len(G.STAT_METRICS)
    assert set(scores["metric"]) == set(G.STAT_METRICS)
    assert (scores["source"] == "gan").all() and (scores["status"] == "ok").all()
    assert (scores["recording"] == "all").all() and (scores["cell"] == "all").all()
    kl_w = scores[scores["metric"] != G.STAT_RANK_METRIC]["value"]
    assert np.isfinite(kl_w).all() and (kl_w >= 0).all()
    params = json.loads((out / "cases/g1/all/derivative/params.json").read_text())
    assert params["window_frames"] == WINDOW and params["gan_windows"] == 10
    assert params["real_windows"] == real.n_frames // WINDOW
    # leaderboard: the statistics columns, ranked ascending by wasserstein_norm, no corr_25hz
    board = S.leaderboard(scores)
    assert list(board.columns) == ["dataset", "method", "rank", "n_cells", "n_failed",
                                   "noise_level", *G.STAT_METRICS]
    assert board["n_cells"].isna().all() and (board["n_failed"] == 0).all()
    key = board[G.STAT_RANK_METRIC].to_numpy()
    assert list(board["rank"]) == [1, 2] and (np.isnan(key[1]) or key[0] <= key[1])
    md = (out / "leaderboard.md").read_text()
    assert "NOT accuracy against ground truth" in md and "corr_25hz" not in md
    assert "| dataset | method | rank | n_failed | noise_level | wasserstein_norm |" in md
    assert md == S.format_leaderboard(out)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["method"]) == {"derivative", "oasis-ar1"}
    assert "rate_kl" in summary and (summary["source"] == "gan").all()

    # a re-run reuses the cached traces and the cases
    mtime = cached.stat().st_mtime_ns
    log = (out / "cases/g1/all/derivative/log.json").read_bytes()
    again = S.run_suite(_suite(tmp_path, _gan_body(run)), out)
    assert counter == ["g1"] and cached.stat().st_mtime_ns == mtime
    assert (out / "cases/g1/all/derivative/log.json").read_bytes() == log
    pd.testing.assert_frame_equal(scores, again)
    # a new seed regenerates them, and the cases run again
    S.run_suite(_suite(tmp_path, _gan_body(run).replace("seed = 4", "seed = 5")), out)
    assert counter == ["g1", "g1"] and TraceSet.load(cached).seed == 5
    assert (out / "cases/g1/all/derivative/log.json").read_bytes() != log
    # so does a changed run (more training steps: a new checkpoint step)
    changed = tmp_path / "run2"
    import shutil

    shutil.copytree(run, changed)
    from cabench.generators.gan_train import _atomic_torch_save, load_checkpoint

    ckpt = load_checkpoint(changed)
    ckpt["step"] += 1
    _atomic_torch_save(ckpt, changed / "checkpoint.pt")
    key = G.cache_key(_suite(tmp_path, _gan_body(run)).datasets[0])
    assert G.cache_key(_suite(tmp_path, _gan_body(changed)).datasets[0]) != key


def _windows_as_gan(ts, window=WINDOW):
    from cabench.generators.evaluate import cut_windows

    w, _ = cut_windows(ts.traces, window)
    return TraceSet(w, ts.frame_rate, source="gan", seed=0)


def test_statistics_zero_for_the_real_data_itself(tmp_path, gan_run, monkeypatch):
    run, _, real = gan_run
    monkeypatch.setattr(G, "generate", lambda d, key="": [_windows_as_gan(real)])
    scores = S.run_suite(_suite(tmp_path, _gan_body(run)), tmp_path / "same", figures=False)
    assert (scores["status"] == "ok").all()
    # identical inputs: identical inferred spikes, so KL = W = 0 exactly
    assert (scores["value"] == 0).all(), scores[["method", "metric", "value"]]

    # clearly different data: much higher firing rates, a slower indicator
    other = _simulate(seed=9, preset="GCaMP6f", rate=8.0, noise=1)
    monkeypatch.setattr(G, "generate", lambda d, key="": [_windows_as_gan(other)])
    diff = S.run_suite(_suite(tmp_path, _gan_body(run)), tmp_path / "diff", figures=False)
    v = diff.set_index(["method", "metric"])["value"]
    for m in ("derivative", "oasis-ar1"):
        assert (v[m] > 0.05).all(), v[m]
        assert v[(m, "rate_wasserstein")] > 0.2  # Hz
        assert v[(m, G.STAT_RANK_METRIC)] > 0.2  # SDs of the real values


def test_generation_failure_is_recorded(tmp_path, gan_run):
    import shutil

    run, _, _ = gan_run
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    scores = S.run_suite(_suite(tmp_path, _gan_body(broken)), tmp_path / "out", figures=False)
    assert (scores["status"] == "failed").all() and set(scores["metric"]) == set(G.STAT_METRICS)
    log = json.loads((tmp_path / "out/cases/g1/all/oasis-ar1/log.json").read_text())
    assert "corrupt or unreadable checkpoint" in log["error"]
    board = S.leaderboard(scores)
    assert (board["n_failed"] == 1).all()


def test_mixed_suite_keeps_the_ordinary_leaderboard(tmp_path, gan_run):
    run, _, _ = gan_run
    sim = ('[[datasets]]\nname = "sim"\nsimulate = { preset = "GCaMP6f", cells = 3, '
           'duration = 20, noise = 2, seed = 3 }\n')
    S.run_suite(_suite(tmp_path, sim), tmp_path / "alone")
    mixed = S.run_suite(_suite(tmp_path, sim + _gan_body(run)), tmp_path / "mixed")
    b_alone = pd.read_csv(tmp_path / "alone" / "leaderboard.csv")
    b_mixed = pd.read_csv(tmp_path / "mixed" / "leaderboard.csv")
    ordinary = b_mixed[b_mixed["dataset"] == "sim"][b_alone.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(ordinary.drop(columns="seconds", errors="ignore"),
                                  b_alone, check_dtype=False)
    assert b_mixed.loc[b_mixed["dataset"] == "g1", "corr_25hz"].isna().all()
    assert b_mixed.loc[b_mixed["dataset"] == "sim", "rate_kl"].isna().all()
    md = (tmp_path / "mixed" / "leaderboard.md").read_text()
    md_alone = (tmp_path / "alone" / "leaderboard.md").read_text()
    assert md.startswith(md_alone) and "NOT accuracy against ground truth" in md
    summary = pd.read_csv(tmp_path / "mixed" / "summary.csv")
    assert set(summary["source"]) == {"simulated", "gan"}
    assert (tmp_path / "mixed" / "figures" / "metrics_boxplot.png").is_file()
    assert set(mixed.loc[mixed["dataset"] == "g1", "metric"]) == set(G.STAT_METRICS)


# --- conditional --------------------------------------------------------------------------------
def test_conditional_run_scored_against_its_input_spikes(tmp_path, monkeypatch):
    cond, calls = _fake_conditional(monkeypatch, tmp_path)
    spikes = _simulate(seed=2, cells=3, duration=30)
    spikes.save(tmp_path / "spikes.h5")
    body = (f'[[datasets]]\nname = "c-sim"\ngan = "{cond}"\nseed = 7\n'
            'simulate = { preset = "GCaMP6f", cells = 3, duration = 30, noise = 2, seed = 3 }\n'
            f'[[datasets]]\nname = "c-file"\ngan = "{cond}"\nspikes = "spikes.h5"\n')
    suite = _suite(tmp_path, body)
    assert [d.gan_kind for d in suite.datasets] == ["conditional"] * 2
    out = tmp_path / "out"
    scores = S.run_suite(suite, out, figures=False)
    assert calls[0] == 7 and len(calls) == 2
    assert (scores["status"] == "ok").all() and (scores["source"] == "gan").all()
    assert "corr_25hz" in set(scores["metric"]) and not set(scores["metric"]) & {"rate_kl"}
    # ground truth = the input spikes, preserved in the cached traces
    got = TraceSet.load(out / "gan" / "c-file" / "000.h5")
    np.testing.assert_array_equal(got.spike_times, spikes.spike_times)
    np.testing.assert_array_equal(got.spike_offsets, spikes.spike_offsets)
    from cabench.simulators.pipeline import Simulation

    sim = Simulation(dict(preset="GCaMP6f", cells=3, duration=30, noise=2, seed=3)).run()
    np.testing.assert_array_equal(TraceSet.load(out / "gan/c-sim/000.h5").spike_times,
                                  sim.spike_times)
    # the fake traces follow the spikes closely: a sensible method scores well
    corr = scores[(scores.metric == "corr_25hz") & (scores.method == "oasis-ar1")]["value"]
    assert corr.median() > 0.5
    board = S.leaderboard(scores)
    assert "corr_25hz" in board and "rate_kl" not in board and (board["n_cells"] == 3).all()
    # reused on a re-run
    S.run_suite(suite, out, figures=False)
    assert len(calls) == 2
