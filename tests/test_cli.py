"""Command line: help, simulate/info round trip, one-line errors, fast startup."""

import subprocess
import sys

import numpy as np
import pytest

from cabench import TraceSet


@pytest.mark.parametrize("cmd", [[], ["simulate"], ["info"], ["presets"]])
def test_help_everywhere(run, cmd):
    res = run(*cmd, "--help")
    assert res.exit_code == 0 and "Usage" in res.output


def test_simulate_then_info(run, tmp_path):
    out = tmp_path / "sim.h5"
    res = run("simulate", "-o", out, "--preset", "GCaMP6s", "--cells", 12, "--duration", 30,
              "--noise", 2, "--seed", 3, "--keep-calcium")
    assert res.exit_code == 0, res.output
    assert "12 cells" in res.output and "seed 3" in res.output
    ts = TraceSet.load(out)
    assert ts.indicator == "GCaMP6s" and ts.calcium is not None and ts.seed == 3
    assert "simulate" in ts.command
    res = run("info", out)
    assert res.exit_code == 0
    assert "1 trials x 12 cells x 900 frames" in res.output
    assert "noise nu    median 2" in res.output and "firing rate" in res.output


def test_parameter_file_and_option_precedence(run, tmp_path):
    (tmp_path / "p.toml").write_text('cells = 5\nduration = 10\nrate = 0.2\nseed = 1\n')
    out = tmp_path / "p.h5"
    res = run("simulate", "-o", out, "--params", tmp_path / "p.toml", "--cells", 7, "-q")
    assert res.exit_code == 0 and res.output == ""
    ts = TraceSet.load(out)
    assert ts.n_cells == 7 and ts.params["rate"] == 0.2 and ts.n_frames == 300


@pytest.mark.parametrize("args, msg", [
    (["--frame-rate", "-1"], "frame_rate must be >"),
    (["--rate", "50"], "not below the frame rate"),
    (["--correlation", "0.3"], "dichotomised-gaussian"),
    (["--sigma", "0.1", "--noise", "2"], "exactly one"),
])
def test_bad_input_gives_one_line_error(run, tmp_path, args, msg):
    res = run("simulate", "-o", tmp_path / "x.h5", *args)
    assert res.exit_code == 2
    assert msg in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.h5").exists()


def test_existing_output_needs_overwrite(run, tmp_path):
    out = tmp_path / "a.h5"
    args = ["simulate", "-o", out, "--cells", 3, "--duration", 5, "--seed", 1, "-q"]
    assert run(*args).exit_code == 0
    res = run(*args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert run(*args, "--overwrite").exit_code == 0


def test_unwritable_output_and_unknown_preset(run, tmp_path):
    res = run("simulate", "-o", tmp_path / "no" / "x.h5")
    assert res.exit_code == 2 and "does not exist" in res.output
    res = run("simulate", "-o", tmp_path / "x.h5", "--preset", "GCaMP99")
    assert res.exit_code == 2 and "GCaMP99" in res.output


def test_info_on_matrix_and_bad_file(run, tmp_path):
    np.save(tmp_path / "m.npy", np.random.default_rng(0).normal(0, 0.05, (3, 600)))
    res = run("info", tmp_path / "m.npy", "--frame-rate", 30)
    assert res.exit_code == 0 and "3 cells x 600 frames" in res.output
    (tmp_path / "bad.h5").write_bytes(b"garbage")
    res = run("info", tmp_path / "bad.h5")
    assert res.exit_code == 2 and "bad.h5" in res.output


def test_console_script_starts_fast_without_heavy_imports():
    code = ("import sys, cabench.cli; "
            "print(sorted(m for m in ('numpy', 'numba', 'h5py', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "cabench.cli", "--help"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and "simulate" in res.stdout


def test_warnings_are_one_line(run, tmp_path):
    res = run("simulate", "-o", tmp_path / "w.h5", "--cells", 3, "--duration", 20, "--rate", 8,
              "--rate-sigma", 0, "--amplitude", 3, "--noise", 0.5, "--seed", 1, "-q")
    assert res.exit_code == 0
    assert res.output.startswith("Warning: ") and res.output.count("\n") == 1


def test_methods_lists_every_registered_method(run):
    from cabench.benchmark.methods import available

    res = run("methods")
    assert res.exit_code == 0
    for name in available():
        assert name in res.output
    assert "default" in res.output  # parameter rows
    res = run("methods", "nonexistent")
    assert res.exit_code == 2 and "oasis-ar1" in res.output


def test_run_suite_and_leaderboard(run, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "tiny"\n[[datasets]]\nname = "sim"\n'
                     'simulate = { cells = 3, duration = 20, seed = 1 }\n'
                     '[[methods]]\nname = "derivative"\n[[methods]]\nname = "oasis-ar1"\n')
    out = tmp_path / "out"
    res = run("run-suite", suite, "-o", out)
    assert res.exit_code == 0, res.output
    assert "| sim | " in res.output and (out / "leaderboard.csv").exists()
    res = run("leaderboard", out)
    assert res.exit_code == 0 and "oasis-ar1" in res.output and "derivative" in res.output
    res = run("run-suite", tmp_path / "missing.toml")
    assert res.exit_code == 2 and "missing.toml" in res.output


def test_documented_synopsis_runs_at_low_frame_rates(run, tmp_path):
    out = tmp_path / "syn.h5"
    res = run("simulate", "-o", out, "--preset", "OGB-1", "--cells", 20, "--trials", 3,
              "--duration", 60, "--frame-rate", 7.5, "--rate", 0.5,
              "--spike-model", "dichotomised-gaussian", "--correlation", 0.05, "--noise", 3,
              "--seed", 4)
    assert res.exit_code == 0, res.output
    ts = TraceSet.load(out)
    assert ts.n_trials == 3 and ts.params["max_rate"] == 3.75  # capped at half the frame rate


def test_os_errors_while_writing_are_one_line(run, tmp_path, monkeypatch):
    import h5py

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "x.h5"))

    monkeypatch.setattr(h5py, "File", refuse)
    res = run("simulate", "-o", tmp_path / "x.h5", "--cells", 2, "--duration", 5)
    assert res.exit_code == 1 and "No space left on device" in res.output
    assert "Traceback" not in res.output and not list(tmp_path.iterdir())
