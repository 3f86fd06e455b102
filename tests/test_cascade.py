"""The optional ``cascade`` method (a wrapper of the external ``cascade2p`` package).

cascade2p is not on PyPI and needs TensorFlow, so these tests never use it: without it they
check the install hint; with a fake ``cascade2p`` injected into ``sys.modules`` they check what
the adapter passes to ``cascade.predict`` and what it makes of the output. The fake behaves as
the real ``predict`` does where it matters: (neurons, time) in and out, a model named by a
sub-folder of ``model_folder`` with ``config.yaml``, NaN in the first and last 32 frames with
``padding=np.nan``, negative values allowed, and an estimate that is one frame early (here an
exact AR(1) deconvolution advanced by one frame).
"""

from __future__ import annotations

import importlib.machinery
import math
import os
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.signal import lfilter

from cabench.benchmark.methods import get_method, installed, method_class, ready
from cabench.benchmark.methods.cascade import read_sampling_rate
from cabench.benchmark.methods.tools import resample_rows
from cabench.cli import main
from cabench.errors import CabenchError

MODEL_RATE = 30.0
DECAY_S = 0.4
AMP = 0.3  # dF/F of one spike
G = math.exp(-1.0 / (DECAY_S * MODEL_RATE))  # the fake model's AR(1) coefficient
PAD = 32
URL = "git+https://github.com/HelmchenLabSoftware/Cascade"
CONFIG = """\
###
### Main parameters of this model:
###

# Name of the model
model_name: Global_EXC_30Hz_smoothing50ms

# Sampling rate of the traces on which the model will be applied
sampling_rate: {rate}   # Hz

noise_levels: [2, 3, 4, 5, 6, 7, 8, 9]
smoothing: 0.05
training_datasets:
  - DS09-GCaMP6f-m-V1
"""


def fake_predict(calls):
    """A stand-in for ``cascade2p.cascade.predict`` that records its calls."""

    def predict(model_name, traces, model_folder="Pretrained_models", threshold=0,
                padding=np.nan, verbosity=0):
        calls.append(dict(model_name=model_name, traces=np.array(traces, copy=True),
                          model_folder=model_folder, threshold=threshold, padding=padding,
                          verbosity=verbosity))
        if not os.path.isfile(os.path.join(model_folder, model_name, "config.yaml")):
            raise FileNotFoundError(f"no model {model_name} in {model_folder}")
        x = np.asarray(traces, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError("traces must be (neurons, time)")
        s = np.zeros_like(x)
        s[:, :-1] = (x[:, 1:] - G * x[:, :-1]) / AMP  # frame t gets frame t + 1's spikes
        s[:, :PAD] = padding
        s[:, -PAD:] = padding
        return s

    return predict


@pytest.fixture
def absent(monkeypatch):
    """cascade2p not importable, whether or not it is installed here."""
    monkeypatch.setitem(sys.modules, "cascade2p", None)


@pytest.fixture
def calls(monkeypatch):
    """A fake cascade2p in sys.modules; the list of its ``predict`` calls."""
    recorded: list[dict] = []
    sub = types.ModuleType("cascade2p.cascade")
    sub.predict = fake_predict(recorded)
    pkg = types.ModuleType("cascade2p")
    pkg.__spec__ = importlib.machinery.ModuleSpec("cascade2p", None, is_package=True)
    pkg.__path__ = []
    pkg.cascade = sub
    monkeypatch.setitem(sys.modules, "cascade2p", pkg)
    monkeypatch.setitem(sys.modules, "cascade2p.cascade", sub)
    return recorded


def write_model(root, rate=MODEL_RATE, name="Global_EXC_30Hz_smoothing50ms", text=None):
    folder = root / "Pretrained_models" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG.format(rate=rate) if text is None else text)
    return folder


@pytest.fixture
def model(tmp_path):
    return write_model(tmp_path)


def ar1_traces(spike_frames, n, g=G, cells=1, noise=0.0, seed=0):
    """(cells, n) AR(1) dF/F: ``AMP`` per spike, baseline 0; white noise on cells 1 on."""
    s = np.zeros(n)
    np.add.at(s, spike_frames, 1.0)
    y = AMP * lfilter([1.0], [1.0, -g], s)
    rng = np.random.default_rng(seed)
    return np.stack([y + (c > 0) * noise * rng.standard_normal(n) for c in range(cells)])


# --- without cascade2p -----------------------------------------------------------------------
def test_absent_cascade2p_is_not_installed_and_says_how(absent, tmp_path):
    cls = method_class("cascade")
    assert not cls.is_installed() and not cls.is_ready()
    assert "cascade" not in installed() and "cascade" not in ready()
    assert URL in cls.install_hint and "tensorflow" in cls.install_hint
    m = get_method("cascade", model=str(write_model(tmp_path)))
    with pytest.raises(CabenchError) as e:
        m.infer(np.random.default_rng(0).random((2, 200)), MODEL_RATE)
    msg = str(e.value)
    assert "\n" not in msg and "not installed" in msg and URL in msg


def test_cli_lists_cascade_as_not_installed(absent):
    res = CliRunner().invoke(main, ["methods"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("cascade "))
    assert "NOT installed" in line and URL in line
    assert "shift_frames" in res.output


def test_defaults_need_a_model_folder(calls):
    m = get_method("cascade")  # valid parameters, but no model to run
    assert m.get_params() == {"model": "", "shift_frames": 1}
    assert method_class("cascade").is_installed() and not method_class("cascade").is_ready()
    with pytest.raises(CabenchError, match="needs model=PATH"):
        m.infer(np.random.default_rng(0).random((1, 200)), MODEL_RATE)
    assert calls == []
    with pytest.raises(CabenchError):
        get_method("cascade", shift_frames=-1)


# --- with a fake cascade2p ---------------------------------------------------------------------
def test_predict_gets_the_model_name_folder_and_clean_rows(calls, model):
    x = ar1_traces([60, 200], 400, cells=6, noise=0.01).reshape(2, 3, 400)
    x[1, 2] = np.nan  # a bad row: never sent to CASCADE
    r = get_method("cascade", model=str(model)).infer(x, MODEL_RATE)
    assert len(calls) == 1
    c = calls[0]
    assert c["model_name"] == "Global_EXC_30Hz_smoothing50ms"
    assert os.path.samefile(c["model_folder"], model.parent)
    assert np.isnan(c["padding"]) and c["verbosity"] == 0 and c["threshold"] == 0
    np.testing.assert_array_equal(c["traces"], x.reshape(6, 400)[:5])  # same rate: as given
    assert r.estimate.shape == x.shape and r.estimate.dtype == np.float32
    assert np.isnan(r.estimate[1, 2]).all() and np.isfinite(r.estimate[:, :2]).all()
    assert r.method == "cascade" and r.unit == "expected spikes per frame"
    assert r.params["model_frame_rate"] == MODEL_RATE and r.params["shift_frames"] == 1
    assert os.path.samefile(r.params["model_path"], model)


def test_output_is_delayed_one_frame_with_zero_ends(calls, model):
    spikes = [40, 100, 101, 250, 400]
    x = ar1_traces(spikes, 500)
    r = get_method("cascade", model=str(model)).infer(x, MODEL_RATE)
    assert r.warnings == []
    est = r.estimate[0].astype(np.float64)
    truth = np.bincount(spikes, minlength=500).astype(float)
    np.testing.assert_allclose(est, truth, atol=1e-5)  # on time, NaN ends are 0
    np.testing.assert_allclose(r.spike_times[0], np.array(spikes) / MODEL_RATE)
    # shift_frames=0 is CASCADE's published timing: one frame early
    early = get_method("cascade", model=str(model), shift_frames=0).infer(x, MODEL_RATE)
    np.testing.assert_allclose(early.estimate[0], np.roll(truth, -1), atol=1e-5)
    two = get_method("cascade", model=str(model), shift_frames=2).infer(x, MODEL_RATE)
    np.testing.assert_allclose(two.estimate[0], np.roll(truth, 1), atol=1e-5)


def test_resamples_to_the_model_rate_and_back_keeping_units(calls, model):
    fr, n = 60.0, 1200
    spikes = [200, 420, 700, 702, 1000]  # at 60 Hz frames
    x = ar1_traces(spikes, n, g=math.sqrt(G), cells=3, noise=0.02, seed=3)
    m = get_method("cascade", model=str(model))
    r = m.infer(x, fr)
    sent = calls[0]["traces"]
    assert sent.shape == (3, n // 2)
    np.testing.assert_allclose(sent, resample_rows(x, fr, MODEL_RATE)[0], atol=1e-6)
    assert r.estimate.shape == x.shape and (r.estimate >= 0).all() and r.warnings == []
    # units: every spike CASCADE reports (NaN as 0, negatives clipped) is kept
    out = fake_predict([])(calls[0]["model_name"], sent, calls[0]["model_folder"])
    expected = np.maximum(np.nan_to_num(out, nan=0.0), 0.0).sum(axis=1)
    np.testing.assert_allclose(r.estimate.astype(np.float64).sum(axis=1), expected, rtol=1e-6)
    # timing (noiseless cell 0): each isolated spike's estimate is centred on its own frame
    e = r.estimate[0].astype(np.float64)
    for k in (200, 420, 1000):
        w = np.arange(k - 8, k + 9)
        assert abs(float((w * e[w]).sum() / e[w].sum()) - k) < 0.6
    # within 5 % of the model rate, nothing is resampled
    m.infer(x[:, :600], 31.0)
    assert calls[-1]["traces"].shape == (3, 600)


def test_traces_shorter_than_the_window_warn(calls, model):
    r = get_method("cascade", model=str(model)).infer(ar1_traces([20], 60), MODEL_RATE)
    assert (r.estimate == 0).all()
    assert any("64-frame window" in w for w in r.warnings)


@pytest.mark.parametrize(
    "case, words",
    [
        ("no folder", "not found"),
        ("no config", "no config.yaml"),
        ("no rate", "has no sampling_rate"),
        ("bad rate", "positive number of Hz"),
        ("bad yaml", "not valid YAML"),
    ],
)
def test_model_folder_problems_are_one_line_errors(calls, tmp_path, case, words):
    folder = tmp_path / "Pretrained_models" / "m"
    if case == "no config":
        folder.mkdir(parents=True)
    elif case == "no rate":
        write_model(tmp_path, name="m", text=CONFIG.replace("sampling_rate", "frame_rate"))
    elif case == "bad rate":
        write_model(tmp_path, name="m", rate="fast")
    elif case == "bad yaml":
        write_model(tmp_path, name="m", text="sampling_rate: [30\n")
    with pytest.raises(CabenchError) as e:
        get_method("cascade", model=str(folder)).infer(ar1_traces([100], 300), MODEL_RATE)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert calls == []


def test_config_is_read_without_pyyaml(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml fails
    assert read_sampling_rate(write_model(tmp_path, rate=7.5)) == 7.5
    quoted = write_model(tmp_path, name="q", text="model_name: q\nsampling_rate: '25'  # Hz\n")
    assert read_sampling_rate(quoted) == 25.0
    nested = write_model(tmp_path, name="n", text="other:\n  sampling_rate: 30\n")
    with pytest.raises(CabenchError, match="no sampling_rate"):
        read_sampling_rate(nested)
