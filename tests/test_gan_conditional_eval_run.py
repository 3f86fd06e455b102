"""cabench evaluate-conditional: a conditional run's twins against its held-out datasets."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from click.testing import CliRunner
from test_readers import recording, write_cattached

from cabench.benchmark.gan_conditional import evaluate_run, held_out_datasets
from cabench.cli import main
from cabench.errors import CabenchError
from cabench.generators.conditional_train import train_conditional
from cabench.generators.gan_train import CONFIG
from cabench.simulators import simulate

TINY = dict(channels=8, dilations=(1, 2), noise_channels=2, latent=2, embed=2,
            critic_channels=(4, 8), lookahead=1)


def write_ground_truth(root):
    """A GCaMP6f training dataset and a GCaMP6s one to hold out: sparse spikes (0.3 Hz), so
    that single spikes are isolated enough for the spike-triggered average."""
    for d, preset in enumerate(("GCaMP6f", "GCaMP6s")):
        for j in range(2):
            ts = simulate(preset=preset, cells=1, duration=90.0, rate=0.3, rate_sigma=0.0,
                          frame_rate=30.0, seed=10 * d + j, noise=1.0)
            write_cattached(root / f"DS0{d + 1}-{preset}-m-sim" / f"cell{j}.mat", [recording(
                ts.times() + 1.0, ts.traces[0, 0], (ts.spikes(0, 0) + 1.0) * 1e4)])
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond-eval")
    gt = write_ground_truth(root / "gt")
    run_dir = root / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_conditional([gt], run_dir, steps=2, device="cpu", model_overrides=TINY,
                          train_overrides=dict(batch_size=4, window=48, seed=1,
                                               val_datasets=["DS02-*"]))
    return gt, run_dir


def test_held_out_datasets_come_from_the_run(trained):
    _, run_dir = trained
    held, rate = held_out_datasets(run_dir)
    assert held == ["DS02-GCaMP6s-m-sim"] and rate == 30.0


def test_evaluation_compares_both_twins_with_the_held_out_recordings(trained, tmp_path):
    gt, run_dir = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = evaluate_run(run_dir, gt, tmp_path / "out", classifier=False)
    assert set(m["dataset"]) == {"DS02-GCaMP6s-m-sim"}
    assert {"gan", "simulated"} <= set(m["candidate"])
    on_disk = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(on_disk) == len(m)
    assert (tmp_path / "out" / "DS02-GCaMP6s-m-sim" / "metrics.csv").is_file()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| DS02-GCaMP6s-m-sim | gan |" in summary

    def stat(candidate, name):
        return float(m[(m.candidate == candidate) & (m.statistic == name)]["value"].iloc[0])

    # the "real" data were simulated with the GCaMP6s preset: its simulated twin has the same
    # response and noise model, while a GAN after 2 steps has learned neither
    assert stat("simulated", "sta_correlation") > 0.9
    assert stat("simulated", "sta_correlation") > stat("gan", "sta_correlation")
    assert stat("simulated", "psd_log_rmse") < stat("gan", "psd_log_rmse")
    assert stat("simulated", "nu_rel_error") < 0.1


def test_an_unconditional_run_is_refused(trained, tmp_path):
    gt, run_dir = trained
    other = tmp_path / "uncond"
    other.mkdir()
    cfg = json.loads((run_dir / CONFIG).read_text())
    cfg.pop("kind")
    (other / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CabenchError, match="unconditional"):
        held_out_datasets(other)
    r = CliRunner().invoke(main, ["evaluate-conditional", str(other), "--ground-truth", str(gt),
                                  "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
