"""GAN evaluation: the rank-formula AUC, similar vs very different simulations, the CLI end to
end and its one-line errors. Small simulations on the CPU."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from cabench.cli import main
from cabench.generators.evaluate import FIGURES, cut_windows, evaluate_gan, roc_auc

BASE = dict(preset="GCaMP6s", cells=8, frame_rate=20, rate=0.5, rate_sigma=0,
            cell_amplitude_cv=0, noise=2)


def _sim(path, window=None, **kw):
    """Simulate into ``path``; with ``window``, one long trial cut into trials of ``window``
    frames (as a generated file, without a recording onset in each)."""
    from cabench import TraceSet
    from cabench.simulators import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = simulate(**{**BASE, **kw})
    if window:
        ts = TraceSet(cut_windows(ts.traces, window)[0], ts.frame_rate, source="gan")
    ts.save(path)
    return str(path)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gan_eval")
    return dict(
        real=_sim(d / "real.h5", duration=960, seed=1),  # one long trial: 60 windows of 16 s
        same=_sim(d / "same.h5", 320, duration=960, seed=2),
        diff=_sim(d / "diff.h5", 320, duration=960, seed=3, rate=3.0, noise=5),
        other_cells=_sim(d / "cells.h5", duration=16, trials=2, seed=4, cells=5),
        other_rate=_sim(d / "rate.h5", duration=16, trials=2, seed=4, frame_rate=25),
        dir=d,
    )


def test_roc_auc_by_hand():
    # positives 0.8, 0.4, 0.4; negatives 0.4, 0.1: pairs won 2 + (0.5 + 1) + (0.5 + 1) = 5 of 6
    assert roc_auc([0.8, 0.4, 0.4, 0.4, 0.1], [1, 1, 1, 0, 0]) == pytest.approx(5 / 6)
    assert roc_auc([3, 2, 1], [1, 1, 0]) == 1.0
    assert roc_auc([1, 2, 3], [1, 1, 0]) == 0.0
    assert roc_auc([1, 1, 1, 1], [1, 0, 1, 0]) == 0.5  # all tied
    assert np.isnan(roc_auc([1, 2], [1, 1]))


def test_cut_windows():
    x = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    w, starts = cut_windows(x, 4)
    assert w.shape == (4, 3, 4) and starts == [(0, 0), (0, 4), (1, 0), (1, 4)]
    np.testing.assert_array_equal(w[3], x[1, :, 4:8])


def test_similar_vs_different(files, tmp_path):
    same = evaluate_gan(files["real"], files["same"], tmp_path / "same", figures=False,
                        seed=0).set_index(["statistic", "reference", "compared"])
    diff = evaluate_gan(files["real"], files["diff"], tmp_path / "diff", figures=False,
                        seed=0).set_index(["statistic", "reference", "compared"])
    key = ("firing_rate", "real", "fake")
    auc = ("c2st_auc", "real", "fake")
    assert same.loc[key, "kl"] < 1.0 < 3.0 < diff.loc[key, "kl"]
    assert same.loc[auc, "value"] < 0.7
    assert diff.loc[auc, "value"] > 0.8 and diff.loc[auc, "accuracy"] > 0.7
    # ground truth present: the truth rows come automatically, truth-vs-real is the same twice
    assert ("firing_rate", "truth", "real") in same.index
    assert same.loc[("van_rossum", "truth", "real"), "kl"] == pytest.approx(
        diff.loc[("van_rossum", "truth", "real"), "kl"])
    assert (same["n_real"] > 0).all() and (same["window_frames"] == 320).all()


def test_cli_end_to_end(files, tmp_path):
    out = tmp_path / "eval"
    r = CliRunner().invoke(main, ["evaluate-gan", "--real", files["real"], "--fake",
                                  files["same"], "-o", str(out), "--no-truth", "--seed", "1",
                                  "--method-params", '{"optimize_g": 0}'])
    assert r.exit_code == 0, r.output
    assert "c2st_auc" in r.output
    with open(out / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["statistic"] for row in rows] == ["firing_rate", "correlation", "van_rossum",
                                                  "c2st_auc"]
    assert {row["method"] for row in rows} == {"oasis-ar1"}
    assert rows[0]["fake_path"] == files["same"]
    for name in FIGURES:
        assert (out / "figures" / name).stat().st_size > 1000
    assert not list(out.glob(".*tmp*"))


@pytest.mark.parametrize("args, needle", [
    (["--fake", "{other_cells}"], "cells"),
    (["--fake", "{other_rate}"], "Hz"),
    (["--fake", "{dir}/missing.h5"], "no such file"),
    (["--fake", "{same}", "--method", "nope"], "oasis-ar1"),
    (["--fake", "{same}", "--method-params", "{{bad"], "JSON"),
    (["--fake", "{same}", "--method-params", '{{"bogus": 1}}'], "bogus"),
])
def test_cli_one_line_errors(files, tmp_path, args, needle):
    args = [a.format(**files) for a in args]
    r = CliRunner().invoke(main, ["evaluate-gan", "--real", files["real"], "-o",
                                  str(tmp_path / "o"), "--no-c2st", "-q", *args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], r.output


def test_cli_truth_without_spikes(files, tmp_path):
    from cabench import TraceSet

    ts = TraceSet.load(files["same"])
    bare = TraceSet(ts.traces, ts.frame_rate, source="gan")
    bare.save(tmp_path / "bare.h5")
    r = CliRunner().invoke(main, ["evaluate-gan", "--real", str(tmp_path / "bare.h5"),
                                  "--fake", files["same"], "-o", str(tmp_path / "o"), "--truth"])
    assert r.exit_code == 2 and "ground-truth" in r.output
