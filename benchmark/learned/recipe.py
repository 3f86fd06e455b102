"""The training recipe of the ``cnn`` method: one validated dataclass (no torch needed).

The defaults are the published CASCADE recipe (Rupprecht et al. 2021): a 64-frame window of raw
dF/F (32 frames before the target frame, the target frame, 31 after) at 30 Hz;
conv(30, k31) -> conv(40, k19) -> max-pool 2 -> conv(50, k5) -> max-pool 2 -> dense(10 per step)
-> flatten -> dense(1), ReLU after every layer but the last, 34,381 parameters; mean squared
error against ground-truth spikes smoothed with a Gaussian of SD 0.05 s; Adagrad with learning
rate 0.05; batches of 1,024; 20 epochs of at most 5 M samples; one ensemble of 5 networks per
noise level nu = 1..9 (% Hz^-1/2).

One default differs: samples are drawn as segments of 32 consecutive target frames whose
windows share one sliding pass (``segment``; the published recipe is ``segment=1``, one window
per sample). On all 29 ground-truth datasets (FiLM, 4 epochs of 1.5 M samples, 2 CPU cores) an
epoch took 7.5 s instead of 50 s and the validation loss was 0.061 instead of 0.066.

``noise_conditioning=True`` replaces the per-level ensembles by one ensemble whose networks see
the noise level: FiLM (a per-channel scale and shift of every convolution's output, computed by
a small network from log nu) trained on all levels at once. A constant extra input channel would
be weaker: through unpadded convolutions it only adds a bias, linear in nu, to the first layer.

``indicator_conditioning=True`` (with noise conditioning) also feeds FiLM the indicator family
of the recording (:func:`cabench.indicators.indicator_family`, one-hot over ``families``, which
training fills with the families of its data after ``unknown``). During training each batch
sample's family is replaced by ``unknown`` with probability ``indicator_dropout``, so the same
networks also serve recordings of an unknown or unseen indicator.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from cabench.errors import CabenchError
from cabench.indicators import UNKNOWN

OPTIMIZERS = ("adagrad", "adam")
#: values of ``inputs`` -> the networks' input channels, in order
#: (:mod:`cabench.benchmark.learned.inputs` computes them)
INPUTS = {"dff": ("dff",), "innovation": ("innovation",),
          "dff+innovation": ("dff", "innovation")}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a trained ``cnn`` model, with the published defaults.

    Architecture: ``window`` frames of dF/F (fraction, no normalisation), of which ``before``
    precede the target frame (the target is window index ``before``); three convolutions with
    ``filters`` and ``kernels`` (no padding), max-pool 2 after the second and third, a dense
    layer of ``dense`` units applied per remaining time step, then one linear output: expected
    spikes in the target frame. ``inputs``: the input channels, ``dff`` (raw dF/F, as
    published), ``innovation`` (the trace's AR(1) innovation, see
    :mod:`cabench.benchmark.learned.inputs`) or ``dff+innovation`` (both). ``film_hidden``
    units map log nu to the FiLM scales and shifts when ``noise_conditioning``; with
    ``indicator_conditioning`` they also see the one-hot indicator family (``families``: the
    vocabulary, ``unknown`` first; empty until trained).

    Data: ground truth resampled to ``frame_rate`` (Hz), noise added up to each of
    ``noise_levels`` (nu, % Hz^-1/2), targets smoothed with a Gaussian of SD ``smoothing_s``
    seconds (0: no smoothing). At most ``max_samples`` samples per network and epoch, datasets
    weighted equally, at most ``max_replicas`` noisy copies per recording and level;
    ``val_fraction`` of the recordings held out for the validation loss. ``time_scales``:
    the training recordings are also used played this many times faster (must include 1;
    e.g. ``(1, 2, 3)`` adds copies with 2x and 3x faster kinetics), see
    :func:`~cabench.benchmark.learned.data.time_scaled`.

    Training: ``ensemble_size`` networks per level (or in the one conditioned ensemble),
    ``epochs`` passes, ``batch_size`` samples (target frames) per step, drawn as segments of
    ``segment`` consecutive target frames whose windows share one sliding pass (1: every
    sample its own window, as published; longer segments train the same network several times
    faster per sample on CPU), ``optimizer`` (``adagrad`` or ``adam``)
    with ``learning_rate``; ``seed`` makes the whole run reproducible.
    """

    window: int = 64
    before: int = 32
    filters: tuple[int, int, int] = (30, 40, 50)
    kernels: tuple[int, int, int] = (31, 19, 5)
    dense: int = 10
    inputs: str = "dff"
    noise_conditioning: bool = False
    film_hidden: int = 16
    indicator_conditioning: bool = False
    indicator_dropout: float = 0.25
    families: tuple[str, ...] = ()
    frame_rate: float = 30.0
    smoothing_s: float = 0.05
    noise_levels: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    time_scales: tuple[float, ...] = (1.0,)
    max_samples: int = 5_000_000
    max_replicas: int = 500
    val_fraction: float = 0.1
    ensemble_size: int = 5
    epochs: int = 20
    batch_size: int = 1024
    segment: int = 32
    optimizer: str = "adagrad"
    learning_rate: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(int(v) for v in self.filters))
        object.__setattr__(self, "kernels", tuple(int(v) for v in self.kernels))
        object.__setattr__(self, "noise_levels",
                           tuple(sorted({float(v) for v in self.noise_levels})))
        object.__setattr__(self, "time_scales",
                           tuple(sorted({float(v) for v in self.time_scales})))
        object.__setattr__(self, "families", tuple(str(v) for v in self.families))
        self._check()

    # --- validation ------------------------------------------------------------------------
    def _check(self) -> None:
        def positive(name: str, value: float, integer: bool = True) -> None:
            ok = value > 0 and (not integer or float(value).is_integer())
            if not ok or not math.isfinite(value):
                kind = "a positive integer" if integer else "a positive number"
                raise CabenchError(f"recipe: {name} must be {kind}, got {value!r}")

        for name in ("window", "dense", "film_hidden", "max_samples", "max_replicas",
                     "ensemble_size", "epochs", "batch_size", "segment"):
            positive(name, getattr(self, name))
        for name in ("frame_rate", "learning_rate"):
            positive(name, getattr(self, name), integer=False)
        if len(self.filters) != 3 or len(self.kernels) != 3:
            raise CabenchError("recipe: filters and kernels need three values each (one per "
                               "convolution)")
        for v in (*self.filters, *self.kernels):
            positive("filters and kernels", v)
        if not 0 <= self.before < self.window:
            raise CabenchError(f"recipe: before must be in 0..window-1 ({self.window - 1}), "
                               f"got {self.before}")
        if not (math.isfinite(self.smoothing_s) and self.smoothing_s >= 0):
            raise CabenchError(f"recipe: smoothing_s must be >= 0 s, got {self.smoothing_s}")
        if not 0 <= self.val_fraction < 1:
            raise CabenchError(f"recipe: val_fraction must be in [0, 1), got {self.val_fraction}")
        if not self.noise_levels or not all(math.isfinite(v) and v > 0
                                            for v in self.noise_levels):
            raise CabenchError(f"recipe: noise_levels must be positive numbers, got "
                               f"{list(self.noise_levels)}")
        if 1.0 not in self.time_scales or not all(math.isfinite(v) and v > 0
                                                  for v in self.time_scales):
            raise CabenchError(f"recipe: time_scales must be positive numbers including 1, got "
                               f"{list(self.time_scales)}")
        if self.indicator_conditioning and not self.noise_conditioning:
            raise CabenchError("recipe: indicator_conditioning needs noise_conditioning (both "
                               "enter the networks through FiLM)")
        if not 0 <= self.indicator_dropout <= 1:
            raise CabenchError(f"recipe: indicator_dropout must be in [0, 1], got "
                               f"{self.indicator_dropout}")
        if self.families and (not self.indicator_conditioning or self.families[0] != UNKNOWN
                              or len(set(self.families)) != len(self.families)):
            raise CabenchError(f"recipe: families must be distinct, start with {UNKNOWN!r} and "
                               f"need indicator_conditioning, got {list(self.families)}")
        if self.inputs not in INPUTS:
            raise CabenchError(f"recipe: inputs must be one of {', '.join(INPUTS)}, got "
                               f"{self.inputs!r}")
        if self.optimizer not in OPTIMIZERS:
            raise CabenchError(f"recipe: optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                               f"{self.optimizer!r}")
        if self.steps < 1 or self.receptive_field > self.window:
            raise CabenchError(
                f"recipe: kernels {list(self.kernels)} do not fit a window of {self.window} "
                "frames (each convolution shortens the window by its kernel size - 1, each "
                "pooling halves it)"
            )

    # --- geometry --------------------------------------------------------------------------
    @property
    def after(self) -> int:
        """Frames after the target frame in a window."""
        return self.window - 1 - self.before

    @property
    def lengths(self) -> tuple[int, int, int, int, int]:
        """Time steps after conv1, conv2, pool1, conv3 and pool2 for one window."""
        k1, k2, k3 = self.kernels
        l1 = self.window - k1 + 1
        l2 = l1 - k2 + 1
        p1 = l2 // 2
        l3 = p1 - k3 + 1
        return l1, l2, p1, l3, l3 // 2

    @property
    def steps(self) -> int:
        """Time steps left for the per-step dense layer (2 for the default recipe)."""
        l1, l2, p1, l3, p2 = self.lengths
        return p2 if min(l1, l2, p1, l3, p2) >= 1 else 0

    @property
    def receptive_field(self) -> int:
        """Frames of the window the output depends on (the window itself by default)."""
        k1, k2, k3 = self.kernels
        return (k1 - 1) + (k2 - 1) + 1 + 2 * (k3 - 1) + 2 + 4 * (self.steps - 1) + 1

    def n_parameters(self) -> int:
        """Trainable parameters of one network (34,381 for the default recipe)."""
        (f1, f2, f3), (k1, k2, k3) = self.filters, self.kernels
        n = (f1 * k1 * self.channels + f1) + (f2 * k2 * f1 + f2) + (f3 * k3 * f2 + f3)
        n += f3 * self.dense + self.dense + self.dense * self.steps + 1
        if self.noise_conditioning:
            h = self.film_hidden
            n += (self.condition_size + 1) * h + h * 2 * (f1 + f2 + f3) + 2 * (f1 + f2 + f3)
        return n

    @property
    def channels(self) -> int:
        """Input channels of the networks (see ``inputs``)."""
        return len(INPUTS[self.inputs])

    @property
    def condition_size(self) -> int:
        """Inputs of the FiLM network: log nu, plus the one-hot family if conditioned on it."""
        return 1 + (len(self.families) if self.indicator_conditioning else 0)

    @property
    def n_networks(self) -> int:
        """Networks of a model: ``ensemble_size`` per level, or one ensemble if conditioned."""
        groups = 1 if self.noise_conditioning else len(self.noise_levels)
        return groups * self.ensemble_size

    @property
    def groups(self) -> list[tuple[float, ...]]:
        """The noise levels each ensemble is trained on (all of them when conditioned)."""
        if self.noise_conditioning:
            return [tuple(self.noise_levels)]
        return [(v,) for v in self.noise_levels]

    # --- conversion ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["filters"], d["kernels"] = list(self.filters), list(self.kernels)
        d["noise_levels"] = list(self.noise_levels)
        d["time_scales"] = list(self.time_scales)
        d["families"] = list(self.families)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """A recipe from a dict (e.g. a model's config.json); unknown keys are refused."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise CabenchError(f"recipe: unknown field(s) {', '.join(unknown)}; valid: "
                               f"{', '.join(valid)}")
        return cls(**d)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (None values are ignored); unknown fields refused."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return Recipe.from_dict({**self.to_dict(), **changes})


_RANGE = re.compile(r"^\s*([0-9.]+)\s*\.\.\s*([0-9.]+)\s*$")


def parse_noise_levels(text: str) -> tuple[float, ...]:
    """Noise levels from ``"1..9"`` (integer steps, inclusive), ``"1,2,4"`` or a mix
    (``"0.5,1..3"``); CabenchError for anything else."""
    levels: list[float] = []
    for part in str(text).split(","):
        m = _RANGE.match(part)
        try:
            if m:
                lo, hi = float(m.group(1)), float(m.group(2))
                if hi < lo:
                    raise ValueError
                levels += [lo + i for i in range(int(math.floor(hi - lo + 1e-9)) + 1)]
            else:
                levels.append(float(part))
        except ValueError:
            raise CabenchError(
                f"noise levels: cannot read {part.strip()!r} in {text!r}; give a range like "
                "1..9, a list like 1,2,4, or both"
            ) from None
    bad = [v for v in levels if not (math.isfinite(v) and v > 0)]
    if bad or not levels:
        raise CabenchError(f"noise levels must be positive numbers (% Hz^-1/2), got {text!r}")
    return tuple(sorted(set(levels)))


def parse_time_scales(text: str) -> tuple[float, ...]:
    """Time scales from ``"1,2,3"``; CabenchError unless they are positive numbers with 1."""
    try:
        scales = tuple(sorted({float(v) for v in str(text).split(",")}))
    except ValueError:
        raise CabenchError(f"time scales: cannot read {text!r}; give a list like 1,2,3") from None
    if not all(math.isfinite(v) and v > 0 for v in scales) or 1.0 not in scales:
        raise CabenchError(f"time scales must be positive numbers including 1, got {text!r}")
    return scales
