"""The ``cnn`` method: architecture, exact window timing, training data, training, model folders,
the train-method command and the method's handling of NaN, short, constant and resampled traces.

Everything trains tiny networks (8 filters per layer) for a few hundred steps on small
simulations written in the CASCADE format, so the file runs in seconds on a busy 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from test_readers import recording, write_cattached

from cabench.benchmark.learned.data import (
    build_samples,
    prepare,
    read_ground_truth,
    select_datasets,
    split_recordings,
    time_scaled,
)
from cabench.benchmark.learned.inputs import model_inputs
from cabench.benchmark.learned.model import CascadeNet, CnnModel, init_weights
from cabench.benchmark.learned.recipe import Recipe, parse_noise_levels, parse_time_scales
from cabench.benchmark.learned.train import (
    SegmentBatches,
    load_model,
    merge_models,
    save_model,
    train_model,
)
from cabench.benchmark.methods import get_method, method_class
from cabench.benchmark.methods.tools import integrate_back
from cabench.benchmark.metrics import corr_25hz
from cabench.conditions import match_noise, resample
from cabench.errors import CabenchError
from cabench.simulators import simulate
from cabench.traceset import TraceSet, ragged

FR = 30.0
#: a tiny recipe: ~500 Adam steps of 8-filter networks at one noise level
TINY = Recipe(filters=(8, 8, 8), noise_levels=(1.0,), ensemble_size=1, epochs=8,
              max_samples=8000, batch_size=128, optimizer="adam", learning_rate=1e-2, seed=1)


# --- ground truth in the CASCADE format ------------------------------------------------------
def _sim(seed: int, frame_rate: float = FR, duration: float = 40.0, cells: int = 1,
         **kw) -> TraceSet:
    return simulate(preset="jGCaMP8f", cells=cells, duration=duration, rate=2.0,
                    rate_sigma=0.3, frame_rate=frame_rate, seed=seed, **kw)


def write_ground_truth(root: Path) -> Path:
    """Two datasets of three one-recording neurons: jGCaMP8f at 30 Hz and at 60 Hz."""
    for d, (name, fr) in enumerate((("DS01-jGCaMP8f-sim", 30.0), ("DS02-jGCaMP8f-sim", 60.0))):
        for j in range(3):
            ts = _sim(100 + 10 * d + j, frame_rate=fr, sigma=0.01)
            t0 = 3.0  # real files do not start at 0 s
            write_cattached(root / name / f"cell{j}.mat", [recording(
                ts.times() + t0, ts.traces[0, 0], (ts.spikes(0, 0) + t0) * 1e4)])
    return root


@pytest.fixture(scope="module")
def gt_folder(tmp_path_factory) -> Path:
    return write_ground_truth(tmp_path_factory.mktemp("gt"))


@pytest.fixture(scope="module")
def gt_sets(gt_folder) -> list[TraceSet]:
    return read_ground_truth(select_datasets(gt_folder))


@pytest.fixture(scope="module")
def trained(gt_sets):
    return train_model(gt_sets, TINY, device="cpu")


@pytest.fixture(scope="module")
def model_folder(trained, tmp_path_factory) -> Path:
    model, record, curve = trained
    return save_model(model, tmp_path_factory.mktemp("models") / "tiny", record, curve)


# --- architecture ------------------------------------------------------------------------------
def test_default_architecture_has_the_published_size():
    r = Recipe()
    # window 64 -> conv k31: 34 -> conv k19: 16 -> pool: 8 -> conv k5: 4 -> pool: 2 steps
    assert r.lengths == (34, 16, 8, 4, 2) and r.receptive_field == 64 == r.window
    by_hand = (30 * 31 + 30) + (40 * 19 * 30 + 40) + (50 * 5 * 40 + 50) + (50 * 10 + 10) \
        + (10 * 2 + 1)
    assert by_hand == 34381 == r.n_parameters()
    assert sum(p.numel() for p in CascadeNet(r).parameters()) == 34381
    film = Recipe(noise_conditioning=True)
    assert sum(p.numel() for p in CascadeNet(film).parameters()) == film.n_parameters() \
        == 34381 + (16 + 16) + (16 * 240 + 240)
    assert (r.before, r.after) == (32, 31) and r.n_networks == 45
    assert Recipe(noise_conditioning=True).n_networks == 5


FAMILIES = ("unknown", "GCaMP6f", "OGB-1")


@pytest.mark.parametrize("conditioned", ["", "nu", "nu+indicator", "nu+2 channels"])
def test_sliding_evaluation_equals_window_by_window(conditioned):
    r = Recipe(noise_conditioning=bool(conditioned),
               indicator_conditioning="indicator" in conditioned,
               families=FAMILIES if "indicator" in conditioned else (),
               inputs="dff+innovation" if "channels" in conditioned else "dff")
    net = CascadeNet(r)
    assert sum(p.numel() for p in net.parameters()) == r.n_parameters()
    gen = torch.Generator().manual_seed(0)
    init_weights(net, gen)
    if conditioned:  # make FiLM matter
        torch.nn.init.normal_(net.film.out.weight, std=0.3, generator=gen)
    x = torch.randn(3, r.channels, 300, generator=gen) * 0.2
    nu = torch.tensor([1.0, 3.0, 8.0])
    family = torch.tensor([0, 2, 1])
    windows = x.unfold(2, r.window, 1).transpose(1, 2)  # (3, 237, channels, 64)
    n = windows.shape[1]
    one_by_one = net(windows.reshape(-1, r.channels, r.window), nu.repeat_interleave(n),
                     family.repeat_interleave(n))
    if r.channels == 1:  # one channel: (B, L) works as well as (B, 1, L)
        x = x[:, 0]
    with torch.inference_mode():
        together = net.sliding(x, nu, family)
        other = net.sliding(x, nu, torch.tensor([1, 0, 2]))
    np.testing.assert_allclose(together.numpy(), one_by_one.reshape(3, -1).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    assert np.allclose(together.numpy(), other.numpy()) == ("indicator" not in conditioned)


def test_indicator_conditioning_recipe():
    r = Recipe(noise_conditioning=True, indicator_conditioning=True, families=FAMILIES)
    assert r.condition_size == 4 and Recipe.from_dict(r.to_dict()) == r
    assert r.n_parameters() == Recipe(noise_conditioning=True).n_parameters() + 3 * 16
    for bad, message in ((dict(noise_conditioning=False), "needs noise_conditioning"),
                         (dict(families=("GCaMP6f", "unknown")), "families"),
                         (dict(families=("unknown", "OGB-1", "OGB-1")), "families"),
                         (dict(indicator_dropout=1.5), "indicator_dropout")):
        with pytest.raises(CabenchError, match=message):
            Recipe(**{**r.to_dict(), **bad})
    with pytest.raises(CabenchError, match="families"):
        Recipe(families=FAMILIES)  # without indicator conditioning


def test_recipe_validation_and_noise_levels():
    assert parse_noise_levels("1..9") == tuple(float(v) for v in range(1, 10))
    assert parse_noise_levels("1,2,4") == (1.0, 2.0, 4.0)
    assert parse_noise_levels("0.5, 2..4") == (0.5, 2.0, 3.0, 4.0)
    for bad in ("a..b", "3..1", "0", "", "1,,x"):
        with pytest.raises(CabenchError, match="noise level"):
            parse_noise_levels(bad)
    with pytest.raises(CabenchError, match="do not fit"):
        Recipe(window=40, before=20)
    with pytest.raises(CabenchError, match="unknown field"):
        Recipe.from_dict({"windows": 64})
    with pytest.raises(CabenchError, match="optimizer"):
        Recipe(optimizer="sgd")
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()
    assert parse_time_scales("2, 1,3") == (1.0, 2.0, 3.0)
    for bad in ("2,3", "1,x", "1,-2", "1,inf"):
        with pytest.raises(CabenchError, match="time scales"):
            parse_time_scales(bad)
    with pytest.raises(CabenchError, match="time_scales"):
        Recipe(time_scales=(2.0,))
    scaled = Recipe(time_scales=(3, 1))
    assert scaled.time_scales == (1.0, 3.0) and Recipe.from_dict(scaled.to_dict()) == scaled


# --- timing: the target frame is the window's frame `before`, in training and prediction -----
def _kernel_set(seed: int, cells: int = 4, frames: int = 2400) -> TraceSet:
    """Isolated spikes at whole frames, each starting an exponential transient (instant rise)
    at exactly its frame: a deterministic kernel whose timing a network can learn exactly."""
    rng = np.random.default_rng(seed)
    y = np.zeros((cells, frames))
    parts = []
    for c in range(cells):
        k = np.sort(rng.choice(np.arange(40, frames - 40, 16), frames // 60, replace=False))
        k = k + rng.integers(0, 6, k.size)  # at least 11 frames apart
        s = np.zeros(frames)
        s[k] = 1.0
        y[c] = lfilter([0.5], [1.0, -np.exp(-1 / 4.0)], s)
        parts.append(k / FR)
    y += rng.normal(0, 0.005, y.shape)
    times, offsets = ragged(parts)
    return TraceSet(traces=y[None], frame_rate=FR, spike_times=times, spike_offsets=offsets,
                    params={"dataset": f"kernel{seed % 2}"})


@pytest.fixture(scope="module")
def kernel_model():
    recipe = TINY.replace(smoothing_s=0.0, epochs=6, max_samples=6000, val_fraction=0.0,
                          seed=2)
    model, _, _ = train_model([_kernel_set(s) for s in range(4)], recipe, device="cpu")
    return model


def test_learned_timing_is_exact_and_shifts_with_the_trace(kernel_model):
    test, _ = match_noise(_kernel_set(99), 1.0, seed=5)  # the trained noise level
    x = test.traces[0].astype(np.float32)
    nu = np.ones(len(x))
    est = np.stack(kernel_model.predict(list(x), nu))
    offsets = []
    for c in range(len(x)):
        for k in np.round(test.spikes(0, c) * FR).astype(int):
            offsets.append(int(np.argmax(est[c, k - 3 : k + 4])) - 3)
    offsets = np.array(offsets)
    # the peak sits on the spike's own frame, not one early or late
    assert np.mean(offsets == 0) >= 0.9, np.bincount(offsets + 3)
    # predicting on a shifted trace shifts the output by exactly the same frames
    w = kernel_model.recipe.window
    for s in (1, 7):
        shifted = np.stack(kernel_model.predict(list(x[:, s:]), nu))
        np.testing.assert_allclose(shifted[:, w : -w], est[:, s + w : -w], rtol=1e-5,
                                   atol=1e-6)


def _peak_offsets(est: np.ndarray, test: TraceSet) -> np.ndarray:
    """Frame of the estimate's peak within 3 frames of each true spike, relative to it."""
    return np.array([int(np.argmax(est[c, k - 3 : k + 7])) - 3 for c in range(len(est))
                     for k in np.round(test.spikes(0, c) * FR).astype(int)])


def test_indicator_conditioning_learns_each_familys_timing(tmp_path):
    """Two datasets of the same traces whose spikes, by indicator, sit on the transient's first
    frame (GCaMP6f) or 3 frames later (OGB-1): only the indicator tells them apart."""
    sets = []
    for seed in range(4):
        ts = _kernel_set(seed)
        sets.append(dataclasses.replace(ts, indicator="GCaMP6f", params={"dataset": "early"}))
        ts = _kernel_set(seed + 10)
        sets.append(dataclasses.replace(ts, indicator="OGB1", params={"dataset": "late"},
                                        spike_times=ts.spike_times + 3 / FR))
    recipe = TINY.replace(smoothing_s=0.0, epochs=6, max_samples=6000, val_fraction=0.0,
                          seed=3, noise_conditioning=True, indicator_conditioning=True)
    model, record, curve = train_model(sets, recipe, device="cpu")
    assert model.recipe.families == ("unknown", "GCaMP6f", "OGB-1")
    folder = save_model(model, tmp_path / "ind", record, curve)
    test, _ = match_noise(_kernel_set(99), 1.0, seed=5)
    offsets = {}
    for indicator in ("GCaMP6f", "OGB-1", None):
        m = get_method("cnn", model=str(folder), indicator=indicator)
        r = m.infer(test.traces, FR)
        offsets[indicator] = _peak_offsets(r.estimate[0], test)
        assert r.params["family"] == (indicator or "unknown")
    assert np.mean(offsets["GCaMP6f"] == 0) >= 0.9, np.bincount(offsets["GCaMP6f"] + 3)
    assert np.mean(offsets["OGB-1"] == 3) >= 0.9, np.bincount(offsets["OGB-1"] + 3)
    # an indicator of a family the model has not seen: unknown, with a warning
    r = get_method("cnn", model=str(folder), indicator="jGCaMP8f").infer(test.traces, FR)
    assert r.params["family"] == "unknown" and any("jGCaMP8" in w for w in r.warnings)
    np.testing.assert_array_equal(
        r.estimate, get_method("cnn", model=str(folder)).infer(test.traces, FR).estimate)


def test_samples_carry_the_family_of_their_recording():
    recipe = TINY.replace(noise_levels=(0.5,), noise_conditioning=True,
                          indicator_conditioning=True, families=("unknown", "OGB-1"))
    small = dataclasses.replace(_step_set("small", 300), indicator="OGB1")
    recs = prepare([small, _step_set("big", 3000, cells=3, seed=1)], recipe)
    assert [r.family for r in recs] == ["OGB-1", "unknown"]
    s = build_samples(recs, recipe, (0.5,), 4000, seed=7)
    small_part = s.start < 7 * (300 + recipe.window - 1 + (-300) % recipe.segment)  # 7 replicas
    assert (s.family[small_part] == 1).all() and (s.family[~small_part] == 0).all()
    assert small_part.any() and (~small_part).any()


def test_pieces_and_batches_do_not_change_the_prediction(kernel_model):
    x = _kernel_set(98).traces[0].astype(np.float32)
    rows = [x[0, :37], x[1, :250], x[2, :1001], x[3]]
    nu = np.ones(len(rows))
    whole = kernel_model.predict(rows, nu, piece=10**6)
    for piece, batch in ((64, 200), (300, 10**6), (1000, 1)):
        cut = kernel_model.predict(rows, nu, piece=piece, batch_frames=batch)
        for a, b in zip(cut, whole, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- training data --------------------------------------------------------------------------------
def _step_set(dataset: str, frames: int, cells: int = 1, seed: int = 0) -> TraceSet:
    """A step of 1 dF/F at frame 100 with one spike there: shows where windows are centred."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(frames) >= 100, 1.0, 0.0) + rng.normal(0, 0.001, (cells, frames))
    times, offsets = ragged([np.array([100 / FR])] * cells)
    return TraceSet(traces=y[None], frame_rate=FR, spike_times=times, spike_offsets=offsets,
                    params={"dataset": dataset})


@pytest.mark.parametrize("segment", [1, 16])
def test_samples_are_centred_balanced_capped_and_reproducible(segment):
    recipe = TINY.replace(smoothing_s=0.0, noise_levels=(0.5,), max_replicas=50,
                          segment=segment)
    small, big = _step_set("small", 300), _step_set("big", 3000, cells=3, seed=1)
    recs = prepare([small, big], recipe)
    s = build_samples(recs, recipe, (0.5,), 4000, seed=7)
    # equal target frames and equal total weight per dataset; the small one got replicas
    assert s.frames == 4000 and s.counts == {"small": 2000, "big": 2000}
    padded = 300 + recipe.window - 1 + (-300) % segment
    small_part = np.arange(s.x.size) < 7 * padded  # the small set comes first, 7 replicas
    assert s.w[small_part].sum() == pytest.approx(s.w[~small_part].sum())
    assert s.w[s.w > 0].mean() == pytest.approx(1.0)
    # whole segments, each within one trace's frames: every target lies in a sampled segment
    assert s.n == pytest.approx(4000 / segment, abs=2)
    covered = np.zeros(s.x.size, bool)
    for a in s.start:
        covered[a : a + segment] = True
    assert covered[s.w > 0].all()
    # traces are stored once per replica (padded), never as windows
    assert s.x.size == s.y.size == s.w.size < 2 * (3 * 3000 + 7 * 300 + 10 * padded)
    # the window of the spike's frame has the step exactly at its frame `before`
    batches = SegmentBatches(s, recipe, torch.device("cpu"))
    inputs, y, w, nu, family = batches.get(torch.arange(s.n))
    assert inputs.shape == (s.n, 1, segment + recipe.window - 1)  # (segments, channels, span)
    inputs = inputs[:, 0]
    seg_i, frame_i = torch.nonzero((y == 1.0) & (w > 0), as_tuple=True)
    assert len(seg_i) > 0 and (nu == 0.5).all()
    b = recipe.before
    windows = inputs[seg_i[:, None], frame_i[:, None] + torch.arange(recipe.window)]
    assert (windows[:, b] > 0.8).all() and (windows[:, b - 1] < 0.2).all()
    # same seed: same samples; another seed: other noise
    again = build_samples(recs, recipe, (0.5,), 4000, seed=7)
    for name in ("x", "w", "start"):
        np.testing.assert_array_equal(getattr(again, name), getattr(s, name))
    assert not np.array_equal(build_samples(recs, recipe, (0.5,), 4000, seed=8).x, s.x)


def test_time_scaled_copies_have_faster_kinetics_and_the_same_spikes():
    """A copy at scale 2 of exponential transients (decay 8 frames) decays in 4 frames, has its
    spikes at half the times and frames, keeps every spike and its NaN stretch."""
    frames, tau = 3000, 8.0
    k = np.arange(60, frames - 60, 50)  # isolated spikes, 50 frames apart
    y = np.zeros(frames)
    y[k] = 1.0
    y = lfilter([1.0], [1.0, -np.exp(-1 / tau)], y)
    y[1000:1020] = np.nan
    times, offsets = ragged([k / FR])
    ts = TraceSet(traces=y[None, None], frame_rate=FR, spike_times=times,
                  spike_offsets=offsets, params={"dataset": "exp"})
    recipe = TINY.replace(smoothing_s=0.0, time_scales=(1.0, 2.0))
    orig, fast = time_scaled(prepare([ts], recipe), recipe)
    assert fast.name == f"{orig.name}@x2" and fast.dataset == orig.dataset == "exp"
    assert fast.ts.n_frames == frames // 2 and fast.ts.frame_rate == pytest.approx(FR, rel=1e-3)
    assert fast.target.sum() == orig.target.sum() == k.size
    np.testing.assert_array_equal(np.flatnonzero(fast.target[0, 0]), k // 2)
    x = fast.ts.traces[0, 0]
    for j in k // 2:
        if abs(j - 505) > 30:  # away from the NaN stretch
            assert int(np.argmax(x[j - 3 : j + 4])) - 3 in (0, 1)
            slope = np.polyfit(np.arange(3, 15), np.log(x[j + 3 : j + 15]), 1)[0]
            assert -1 / slope == pytest.approx(tau / 2, rel=0.1)
    assert not fast.valid[0, 0, 502:508].any() and fast.valid[0, 0, :495].all()
    # the copy changes no dataset's share of the samples
    other = _step_set("other", 3000)
    recs = time_scaled(prepare([ts, other], recipe), recipe)
    assert build_samples(recs, recipe, (1.0,), 2000, seed=0).counts == {"exp": 1000,
                                                                        "other": 1000}


def test_recordings_noisier_than_a_level_are_left_out():
    recipe = TINY.replace(noise_levels=(2.0, 4.0))
    clean = _sim(1, sigma=0.005)  # nu 1.3
    noisy, _ = match_noise(_sim(2, sigma=0.005), 3.0, seed=1)
    clean.params["dataset"], noisy.params["dataset"] = "clean", "noisy"
    recs = prepare([clean, noisy], recipe)
    assert build_samples(recs, recipe, (2.0,), 1000, seed=0).counts == {"clean": 1000}
    assert build_samples(recs, recipe, (4.0,), 1000, seed=0).counts == {"clean": 500,
                                                                        "noisy": 500}
    with pytest.raises(CabenchError, match="as clean as"):
        train_model([noisy], TINY, device="cpu")


def test_validation_split_holds_out_whole_recordings(gt_sets):
    recs = prepare(gt_sets, TINY)
    train, val = split_recordings(recs, 0.34, np.random.default_rng(0))
    assert sorted(train + val) == list(range(len(recs))) and 1 <= len(val) <= 4
    for d in {r.dataset for r in recs}:  # every dataset keeps training recordings
        assert any(recs[i].dataset == d for i in train)
    assert split_recordings(recs, 0.0, np.random.default_rng(0))[1] == []


# --- training -------------------------------------------------------------------------------------
def test_tiny_model_recovers_spikes_of_held_out_data(model_folder):
    test = _sim(7, cells=4, duration=60, noise=1.0)
    res = get_method("cnn", model=str(model_folder), device="cpu").infer(test)
    corr = [corr_25hz(res.estimate[0, c], test.times(), test.spikes(0, c)) for c in range(4)]
    assert np.mean(corr) > 0.5, corr
    ratio = res.estimate.sum() / sum(test.spikes(0, c).size for c in range(4))
    assert 0.5 < ratio < 2.0


def test_training_is_deterministic(gt_sets):
    recipe = TINY.replace(epochs=1, max_samples=1000)
    a, rec_a, curve_a = train_model(gt_sets, recipe, device="cpu")
    b, _, curve_b = train_model(gt_sets, recipe, device="cpu")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["train_loss"] for r in curve_a] == [r["train_loss"] for r in curve_b]
    c, _, _ = train_model(gt_sets, recipe.replace(seed=2), device="cpu")
    assert not torch.equal(c.state_dict()[next(iter(sa))], sa[next(iter(sa))])
    assert set(rec_a["datasets"]) == {"DS01-jGCaMP8f-sim", "DS02-jGCaMP8f-sim"}
    assert sum(rec_a["datasets"].values()) + len(rec_a["validation_recordings"]) == 6


def test_model_folder_round_trip(trained, model_folder, gt_sets):
    model, record, curve = trained
    assert {p.name for p in model_folder.iterdir()} == {"config.json", "weights.pt",
                                                       "training_curve.csv"}
    state = torch.load(model_folder / "weights.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    loaded, cfg = load_model(model_folder)
    assert loaded.recipe == model.recipe == TINY
    assert cfg["recipe"]["filters"] == [8, 8, 8] and cfg["architecture"]["target_index"] == 32
    assert cfg["training"]["versions"]["torch"] == torch.__version__
    x = list(gt_sets[0].traces[0, :, :500])
    np.testing.assert_array_equal(np.stack(loaded.predict(x, [1.0])),
                                  np.stack(model.predict(x, [1.0])))
    lines = (model_folder / "training_curve.csv").read_text().splitlines()
    assert lines[0] == "group,noise_levels,member,epoch,train_loss,val_loss,seconds"
    assert len(lines) == 1 + TINY.epochs
    with pytest.raises(CabenchError, match="exists"):
        save_model(model, model_folder)
    with pytest.raises(CabenchError, match="not a cnn model folder"):
        load_model(model_folder.parent)


def test_merged_model_predicts_the_mean_of_all_networks(model_folder, gt_sets, tmp_path):
    other = CnnModel(TINY.replace(seed=2, ensemble_size=2))
    gen = torch.Generator().manual_seed(5)
    for net in other.groups[0]:
        init_weights(net, gen)
    save_model(other, tmp_path / "seed2")
    merged, record = merge_models([model_folder, tmp_path / "seed2"])
    assert merged.recipe == TINY.replace(ensemble_size=3)
    assert [(r["seed"], r["networks"]) for r in record["merged_from"]] == [(1, 1), (2, 2)]
    x = list(gt_sets[0].traces[0, :, :500])
    one, two = (np.stack(load_model(f)[0].predict(x, [1.0]))
                for f in (model_folder, tmp_path / "seed2"))
    folder = save_model(merged, tmp_path / "merged", record)
    np.testing.assert_allclose(np.stack(load_model(folder)[0].predict(x, [1.0])),
                               (one + 2 * two) / 3, rtol=1e-5, atol=1e-6)
    save_model(CnnModel(TINY.replace(smoothing_s=0.0, epochs=2)), tmp_path / "other")
    with pytest.raises(CabenchError, match="differ in epochs, smoothing_s"):
        merge_models([model_folder, tmp_path / "other"])


# --- the command line -----------------------------------------------------------------------------
def test_train_method_end_to_end(run, gt_folder, tmp_path):
    out = tmp_path / "model"
    args = ["train-method", "cnn", "--ground-truth", gt_folder, "--datasets", "DS01-*",
            "--noise-levels", "1..2", "--epochs", 1, "--max-samples", 300, "--ensemble-size", 1,
            "--batch-size", 100, "--seed", 3, "-o", out]
    res = run(*args, "--quiet")
    assert res.exit_code == 0, res.output
    assert res.output == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["recipe"]["noise_levels"] == [1.0, 2.0] and cfg["recipe"]["seed"] == 3
    assert cfg["recipe"]["filters"] == [30, 40, 50] and cfg["recipe"]["epochs"] == 1
    training = cfg["training"]
    assert list(training["datasets"]) == ["DS01-jGCaMP8f-sim"]  # held-out recordings apart
    assert training["datasets"]["DS01-jGCaMP8f-sim"] + len(training["validation_recordings"]) == 3
    assert "train-method cnn" in cfg["training"]["command"]
    assert cfg["architecture"]["parameters_per_network"] == 34381
    # an existing folder needs --force
    res = run(*args, "--quiet")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "--force" in res.output
    res = run(*args, "--quiet", "--force", "--exclude", "DS02-*", "--time-scales", "1,2",
              "--inputs", "dff+innovation")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["recipe"]["time_scales"] == [1.0, 2.0]
    assert cfg["recipe"]["inputs"] == "dff+innovation"
    assert cfg["architecture"]["parameters_per_network"] == 34381 + 30 * 31
    # missing parent folders are made; a file in the way is a one-line error
    args[-1] = tmp_path / "models" / "fold1" / "model"
    assert run(*args, "--quiet").exit_code == 0 and (args[-1] / "weights.pt").is_file()
    (tmp_path / "file").write_text("")
    args[-1] = tmp_path / "file" / "model"
    res = run(*args, "--quiet")
    assert res.exit_code == 2 and "is not a folder" in res.output, res.output


@pytest.mark.parametrize("change, message", [
    (("--ground-truth", "missing"), "does not exist"),
    (("--datasets", "DS9*"), "no datasets"),
    (("--exclude", "DS*"), "no datasets"),
    (("--noise-levels", "a..b"), "noise levels"),
    (("--time-scales", "2,3"), "time scales"),
    (("--device", "gpu"), "gpu"),
    (("--inputs", "spikes"), "spikes"),
])
def test_train_method_errors_are_one_line(run, gt_folder, tmp_path, change, message):
    args = {"--ground-truth": gt_folder, "-o": tmp_path / "m", "--epochs": 1}
    args[change[0]] = tmp_path / change[1] if change[1] == "missing" else change[1]
    res = run("train-method", "cnn", *[v for kv in args.items() for v in kv], "-q")
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "m").exists()


def test_train_method_refuses_untrainable_methods(run, gt_folder, tmp_path):
    res = run("train-method", "oasis-ar1", "--ground-truth", gt_folder, "-o", tmp_path / "m")
    assert res.exit_code == 2 and "cannot be trained" in res.output


# --- the method -----------------------------------------------------------------------------------
def test_registry_imports_without_torch_and_default_model_message():
    code = ("import sys, cabench.benchmark.methods as m; m.describe_methods(); "
            "m.get_method('cnn'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    cls = method_class("cnn")
    assert cls.is_installed() and not cls.needs_training and cls.trainable
    if not cls.is_ready():  # until a default model ships
        with pytest.raises(CabenchError, match="no default model shipped yet; train one with "
                                               "cabench train-method"):
            get_method("cnn").infer(np.zeros((1, 100), np.float32) + 0.1, FR)
    with pytest.raises(CabenchError, match="not found"):
        get_method("cnn", model="/no/such/folder").infer(np.ones((1, 100)), FR)


def test_nan_short_and_constant_rows(model_folder):
    m = get_method("cnn", model=str(model_folder), device="cpu")
    x = _sim(11, cells=5, duration=20, noise=1.0).traces[0].astype(np.float64)
    x[0] = np.nan
    x[1] = 0.2
    x[2, 100:120] = np.nan
    x[3, :3] = np.inf
    r = m.infer(x, FR)
    assert np.isnan(r.estimate[:2]).all()
    assert np.isnan(r.estimate[2, 100:120]).all() and np.isnan(r.estimate[3, :3]).all()
    ok = np.isfinite(x)
    assert np.isfinite(r.estimate[2:][ok[2:]]).all() and (r.estimate[2:][ok[2:]] >= 0).all()
    text = "\n".join(r.warnings)
    assert "row 0 " in text and "row 1 " in text and "constant" in text
    # unaffected rows match a run without the bad ones
    np.testing.assert_allclose(r.estimate[4], m.infer(x[4:], FR).estimate[0], rtol=1e-5,
                               atol=1e-7)
    # shorter than the window: padded and predicted, with a warning when much shorter
    for n, warned in ((50, False), (20, True)):
        r = m.infer(x[4:, :n], FR)
        assert np.isfinite(r.estimate).all() and r.estimate.shape == (1, n)
        assert any("much shorter" in w for w in r.warnings) == warned


def test_noisy_rows_use_the_top_level_with_a_warning(model_folder):
    test, _ = match_noise(_sim(12, cells=2, duration=20, sigma=0.01), 3.0, seed=2)
    r = get_method("cnn", model=str(model_folder)).infer(test)
    assert r.warnings == ["2 row(s): UserWarning: noise level above the model's highest (1); "
                          "treated as 1"]
    assert np.isfinite(r.estimate).all()


def test_resampling_conserves_spikes_and_timing(model_folder):
    ts60 = _sim(13, frame_rate=60.0, cells=4, duration=40, noise=1.0)
    ts30 = resample(ts60, 30.0)
    m = get_method("cnn", model=str(model_folder))
    e60, e30 = m.infer(ts60).estimate, m.infer(ts30).estimate
    assert e60.shape == ts60.traces.shape and e30.shape == ts30.traces.shape
    np.testing.assert_allclose(e60.sum(axis=-1), e30.sum(axis=-1), rtol=0.03)
    for c in range(4):  # same timing at both rates
        c60 = corr_25hz(e60[0, c], ts60.times(), ts60.spikes(0, c))
        c30 = corr_25hz(e30[0, c], ts30.times(), ts30.spikes(0, c))
        assert c60 == pytest.approx(c30, abs=0.05)
    # integrating back keeps every count exactly, whatever the ratio of rates
    est = np.random.default_rng(0).random((3, 77))
    for n_orig in (154, 200, 61, 77):
        back = integrate_back(est, n_orig)
        assert back.shape == (3, n_orig) and (back >= 0).all()
        np.testing.assert_allclose(back.sum(axis=1), est.sum(axis=1), rtol=1e-12)


def test_fit_trains_with_the_models_recipe(model_folder, gt_sets):
    m = get_method("cnn", model=str(model_folder), device="cpu")
    assert m.fit(gt_sets[:3], epochs=1, max_samples=500) is m
    assert m.model_.recipe == TINY.replace(epochs=1, max_samples=500)
    r = m.infer(gt_sets[0].traces, gt_sets[0].frame_rate)
    assert r.params["model_path"] == "(trained in memory by fit)"
    assert np.isfinite(r.estimate).all()
    with pytest.raises(CabenchError):
        m.fit([])


def test_noise_conditioned_model_trains_and_uses_nu(gt_sets, tmp_path):
    recipe = TINY.replace(noise_conditioning=True, noise_levels=(1.0, 2.0), epochs=1,
                          max_samples=1000, ensemble_size=2)
    model, record, curve = train_model(gt_sets, recipe, device="cpu")
    assert len(model.groups) == 1 and len(model.groups[0]) == 2
    assert record["samples"]["1,2"]["train"] == 1000 and len(curve) == 2
    folder = save_model(model, tmp_path / "film", record, curve)
    x = gt_sets[0].traces[0, :, :600]
    a, b = model.predict(list(x), [1.0]), model.predict(list(x), [2.0])
    assert not np.allclose(a[0], b[0])  # the noise level reaches the networks
    r = get_method("cnn", model=str(folder)).infer(gt_sets[0])
    assert r.params["noise_conditioning"] and np.isfinite(r.estimate).all()


def test_innovation_input_model_trains_and_predicts_from_both_channels(gt_sets, tmp_path):
    recipe = TINY.replace(inputs="dff+innovation")
    assert recipe.n_parameters() == TINY.n_parameters() + 8 * 31  # conv1 sees two channels
    model, record, curve = train_model(gt_sets, recipe, device="cpu")
    folder = save_model(model, tmp_path / "both", record, curve)
    loaded, cfg = load_model(folder)
    assert loaded.recipe == recipe and cfg["recipe"]["inputs"] == "dff+innovation"
    # prediction feeds the whole row's channels: the same as the sliding pass over them
    row = gt_sets[0].traces[0, 0, :400].astype(np.float32)
    chans = np.pad(model_inputs(row, recipe.inputs), ((0, 0), (recipe.before, recipe.after)),
                   mode="edge")  # the ends are padded with edge values, channel by channel
    with torch.inference_mode():
        direct = loaded.groups[0][0].sliding(torch.from_numpy(chans[None]),
                                             torch.tensor([1.0]))[0].numpy()
    np.testing.assert_allclose(loaded.predict([row], [1.0])[0], direct, rtol=1e-5, atol=1e-6)
    # and it learns: held-out spikes are recovered as well as by the one-channel model
    test = _sim(7, cells=4, duration=60, noise=1.0)
    res = get_method("cnn", model=str(folder), device="cpu").infer(test)
    corr = [corr_25hz(res.estimate[0, c], test.times(), test.spikes(0, c)) for c in range(4)]
    assert np.mean(corr) > 0.5, corr
    assert res.params["model_inputs"] == "dff+innovation"
    with pytest.raises(CabenchError, match="inputs must be one of"):
        TINY.replace(inputs="spikes")


def test_cuda_without_a_gpu_is_refused(model_folder):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(CabenchError, match="no CUDA"):
        get_method("cnn", model=str(model_folder), device="cuda").infer(np.ones((1, 99)), FR)
