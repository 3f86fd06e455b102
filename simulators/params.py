"""Simulation parameters as data: one table validates input, builds CLI options and docs.

Precedence: built-in defaults (the GCaMP6f preset) < ``--preset`` < parameter file < options.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cabench.errors import CabenchError
from cabench.simulators.presets import PRESETS, preset

SPIKE_MODELS = ("poisson", "dichotomised-gaussian")
NOISE_MODELS = ("gaussian", "poisson-gaussian")


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    exclusive_min: bool = False

    def convert(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                v = value.lower() in ("true", "1", "yes")
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            else:
                v = self.type(value)
        except (TypeError, ValueError):
            raise CabenchError(
                f"parameter {self.name}: expected {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices and v not in self.choices:
            raise CabenchError(
                f"parameter {self.name}: {v!r} is not one of {', '.join(self.choices)}"
            )
        if self.type in (int, float):
            if v != v:
                raise CabenchError(f"parameter {self.name}: NaN is not allowed")
            lo_bad = self.minimum is not None and (
                v <= self.minimum if self.exclusive_min else v < self.minimum
            )
            if lo_bad:
                rel = ">" if self.exclusive_min else ">="
                raise CabenchError(f"parameter {self.name} must be {rel} {self.minimum}, got {v}")
            if self.maximum is not None and v > self.maximum:
                raise CabenchError(f"parameter {self.name} must be <= {self.maximum}, got {v}")
        return v


_G6F = PRESETS["GCaMP6f"]

PARAMS: tuple[Param, ...] = (
    # population and time
    Param("cells", int, 100, "number of cells", 1),
    Param("trials", int, 1, "number of trials (repeats of the same stimulus)", 1),
    Param("duration", float, 60.0, "duration of one trial (s)", 0, exclusive_min=True),
    Param("frame_rate", float, 30.0, "frame rate (Hz)", 0, exclusive_min=True),
    # spikes
    Param("spike_model", str, "poisson", "spike model", choices=SPIKE_MODELS),
    Param("rate", float, 0.5, "median firing rate across cells (Hz)", 0, exclusive_min=True),
    Param("rate_sigma", float, 0.8, "SD of ln(rate) across cells (lognormal; 0 = equal)", 0),
    Param("max_rate", float, 20.0,
          "upper limit of a cell's mean rate (Hz); when not given, at most half the frame rate",
          0, exclusive_min=True),
    Param("refractory", float, 0.002, "absolute refractory period (s)", 0),
    Param("burst_fraction", float, 0.0, "fraction of spikes fired in bursts", 0, 0.95),
    Param("burst_size", float, 3.0, "mean number of spikes per burst", 2),
    Param("burst_isi", float, 0.008, "interval between spikes in a burst (s)", 0,
          exclusive_min=True),
    Param("correlation", float, 0.0,
          "pairwise correlation of per-frame spike indicators (dichotomised-gaussian)", 0, 0.99),
    Param("correlation_matrix", str, None,
          "file (.npy/.csv) with a cells x cells target correlation matrix (DG)"),
    Param("gain_sd", float, 0.0, "SD of a shared latent log-gain that correlates cells", 0, 3),
    Param("gain_timescale", float, 1.0, "time constant of the shared latent gain (s)", 0,
          exclusive_min=True),
    Param("stimulus_depth", float, 0.0,
          "SD of ln-rate modulation by a stimulus repeated across trials", 0, 3),
    Param("stimulus_timescale", float, 0.5, "time constant of the stimulus modulation (s)", 0,
          exclusive_min=True),
    # indicator
    Param("indicator", str, _G6F["indicator"], "indicator name recorded in the file"),
    Param("amplitude", float, _G6F["amplitude"], "peak dF/F (fraction) of one isolated spike", 0,
          exclusive_min=True),
    Param("amplitude_cv", float, 0.2, "spike-to-spike coefficient of variation of amplitude", 0),
    Param("cell_amplitude_cv", float, 0.3, "cell-to-cell coefficient of variation of amplitude",
          0),
    Param("decay", float, _G6F["decay"], "decay time constant (s)", 0, exclusive_min=True),
    Param("rise", float, _G6F["rise"], "rise time constant (s); 0 gives an AR(1) kernel", 0),
    Param("hill", float, _G6F["hill"], "Hill exponent of the indicator nonlinearity", 0.1),
    Param("saturation", float, _G6F["saturation"],
          "saturation constant of the nonlinearity (0 = none)", 0),
    Param("subframe", bool, True, "keep sub-frame spike timing (else spikes snap to frames)"),
    # baseline and neuropil
    Param("drift_sd", float, 0.0, "SD of slow baseline drift (dF/F)", 0),
    Param("drift_timescale", float, 60.0, "time constant of baseline drift (s)", 0,
          exclusive_min=True),
    Param("neuropil", float, 0.0, "neuropil contamination coefficient", 0, 2),
    Param("neuropil_sd", float, 0.05, "SD of the neuropil signal (dF/F), half shared", 0),
    Param("neuropil_timescale", float, 1.0, "time constant of the neuropil signal (s)", 0,
          exclusive_min=True),
    # noise
    Param("noise", float, 2.0,
          "target CASCADE noise level nu (% Hz^-1/2); exclusive with sigma", 0),
    Param("sigma", float, None, "noise SD at baseline (dF/F); exclusive with noise", 0),
    Param("noise_model", str, "gaussian", "noise model", choices=NOISE_MODELS),
    Param("shot_fraction", float, 0.5,
          "poisson-gaussian: share of baseline noise variance that is shot noise", 0, 1),
    Param("seed", int, None, "random seed (drawn and recorded when not given)", 0),
)

BY_NAME = {p.name: p for p in PARAMS}


def load_param_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON parameter file into a dict (keys may use - or _)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise CabenchError(f"cannot read parameter file {path}: {e.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise CabenchError(f"parameter file {path} is not valid {path.suffix[1:]}: {e}") from None
    if not isinstance(data, dict):
        raise CabenchError(f"parameter file {path} must hold a table of parameters")
    return {k.replace("-", "_"): v for k, v in data.items()}


def resolve(user: dict[str, Any] | None = None, preset_name: str | None = None) -> dict[str, Any]:
    """Full, validated parameter dict from defaults, a preset and user values.

    Unknown names are refused with the list of valid ones; ``None`` values in ``user`` mean
    "not given". ``noise`` and ``sigma`` exclude each other: giving one clears the other.
    """
    user = {k.replace("-", "_"): v for k, v in (user or {}).items() if v is not None}
    unknown = sorted(set(user) - set(BY_NAME) - {"preset"})
    if unknown:
        raise CabenchError(
            f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(BY_NAME)}"
        )
    preset_name = user.pop("preset", preset_name)
    values = {p.name: p.default for p in PARAMS}
    if preset_name:
        try:
            values.update(preset(preset_name))
        except KeyError as e:
            raise CabenchError(e.args[0]) from None
        values["preset"] = preset_name
    if "sigma" in user and "noise" not in user:
        values["noise"] = None
    if "noise" in user and "sigma" not in user:
        values["sigma"] = None
    values.update(user)
    if "max_rate" not in user and values.get("frame_rate"):
        values["max_rate"] = min(float(values["max_rate"]), 0.5 * float(values["frame_rate"]))
    out = {k: (BY_NAME[k].convert(v) if k in BY_NAME else v) for k, v in values.items()}
    _check(out)
    return out


def _check(p: dict[str, Any]) -> None:
    fr = p["frame_rate"]
    if (p["noise"] is None) == (p["sigma"] is None):
        raise CabenchError("give exactly one of noise (target nu) and sigma (noise SD)")
    if p["max_rate"] >= fr or p["rate"] >= fr:
        raise CabenchError(
            f"firing rate {max(p['rate'], p['max_rate'])} Hz is not below the frame rate "
            f"{fr} Hz (lower rate/max_rate or raise frame_rate)"
        )
    if p["refractory"] * p["max_rate"] >= 1:
        raise CabenchError(
            f"max_rate {p['max_rate']} Hz is impossible with a refractory period of "
            f"{p['refractory']} s"
        )
    if p["rise"] > 0 and p["rise"] >= p["decay"]:
        raise CabenchError(f"rise ({p['rise']} s) must be shorter than decay ({p['decay']} s)")
    if round(p["duration"] * fr) < 2:
        raise CabenchError("duration x frame_rate gives fewer than 2 frames")
    dg = p["spike_model"] == "dichotomised-gaussian"
    if not dg and (p["correlation"] > 0 or p["correlation_matrix"]):
        raise CabenchError(
            "correlation targets need spike_model dichotomised-gaussian; for poisson "
            "populations use gain_sd (shared latent gain)"
        )
    if dg:
        extra = [k for k in ("burst_fraction", "gain_sd", "stimulus_depth") if p[k] > 0]
        if extra:
            raise CabenchError(
                f"{', '.join(extra)} apply to the poisson spike model, not dichotomised-gaussian"
            )
        if p["correlation"] > 0 and p["correlation_matrix"]:
            raise CabenchError("give correlation or correlation_matrix, not both")
