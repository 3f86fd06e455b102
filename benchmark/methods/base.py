"""The spike-inference method framework: parameter schemas, the ``Method`` base class, results.

A method is a class whose attributes say what it is (``name``, ``description``, ``params``,
``output_unit``, ``needs_training``, ``needs_gpu``, ``install_hint``). The base class, not each
method, validates parameters and input, handles bad rows, times the run, records versions and
warnings and normalises the output. A method implements only :meth:`Method._infer_row`, which
sees one clean float64 trace at a time, or (``batched = True``, e.g. a network on a GPU)
:meth:`Method._infer_rows`, which sees all clean rows of a call at once. Supervised methods
either need training (``needs_training``) or ship a trained model that :meth:`Method.fit` can
replace (``trainable``).

Conventions
-----------
* Input traces are dF/F as a fraction, ``(cells, frames)`` or ``(trials, cells, frames)``;
  the frame rate is in Hz and frame ``k`` is sampled at ``t_k = k / frame_rate`` seconds.
* Estimates are **expected spikes per frame** (not Hz: multiply by the frame rate for Hz),
  float32, non-negative, with the shape of the input. Frame ``k`` stands for the interval
  ``[t_k - 1 / (2 frame_rate), t_k + 1 / (2 frame_rate))``, as in ``TraceSet.binned_spikes``.
* Spike times are in seconds on the same clock.

Bad rows never raise: a row that is all NaN, constant, or has fewer finite frames than the
method's minimum gives NaN estimates, no spike times and a recorded warning; so does a row on
which the method itself fails (the exception type and message are recorded). NaN or infinite
frames inside a row are filled by linear interpolation between the nearest finite frames (the
edges by the nearest finite value) before the method sees the row; the estimate at those
frames is NaN and no spike is placed there.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cabench.errors import CabenchError

OUTPUT_UNIT = "expected spikes per frame"


# --- parameter schemas ----------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """Schema of one method parameter: type, default, allowed range or choices, unit, text.

    ``type`` is ``float``, ``int``, ``bool`` or ``str``. ``nullable`` allows ``None``, whose
    meaning (usually "estimate from the data" or "take it from the indicator") the description
    states. Bounds are inclusive unless ``exclusive_minimum``.
    """

    type: type
    default: Any
    description: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False

    def validate(self, name: str, value: Any) -> Any:
        """The value converted to ``type``; CabenchError for a wrong type or range."""
        if value is None:
            if self.nullable:
                return None
            raise CabenchError(f"parameter {name}: None is not allowed")
        t = self.type
        ok = (
            isinstance(value, bool)
            if t is bool
            else isinstance(value, str)
            if t is str
            else isinstance(value, int | np.integer) and not isinstance(value, bool)
            if t is int
            else isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool)
        )
        if t is int and isinstance(value, float | np.floating) and float(value).is_integer():
            ok = True
        if not ok:
            raise CabenchError(
                f"parameter {name}: expected {t.__name__}, got {type(value).__name__} {value!r}"
            )
        v = t(value)
        if self.choices is not None and v not in self.choices:
            raise CabenchError(
                f"parameter {name}: {v!r} is not one of {', '.join(map(str, self.choices))}"
            )
        if t in (int, float):
            if not np.isfinite(v):
                raise CabenchError(f"parameter {name}: must be finite, got {v}")
            if self.minimum is not None:
                if self.exclusive_minimum and v <= self.minimum:
                    raise CabenchError(f"parameter {name} must be > {self.minimum}, got {v}")
                if not self.exclusive_minimum and v < self.minimum:
                    raise CabenchError(f"parameter {name} must be >= {self.minimum}, got {v}")
            if self.maximum is not None and v > self.maximum:
                raise CabenchError(f"parameter {name} must be <= {self.maximum}, got {v}")
        return v

    def parse(self, name: str, text: str) -> Any:
        """Convert command-line text (``"0.3"``, ``"true"``, ``"none"``) and validate it."""
        s = text.strip()
        if s.lower() in ("none", "null", "auto") and self.nullable:
            return None
        try:
            if self.type is bool:
                if s.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(s)
                value: Any = s.lower() in ("true", "1", "yes")
            elif self.type is int:
                value = int(s)
            elif self.type is float:
                value = float(s)
            else:
                value = s
        except ValueError:
            raise CabenchError(
                f"parameter {name}: expected {self.type.__name__}, got {text!r}"
            ) from None
        return self.validate(name, value)

    def range_text(self) -> str:
        """The allowed values in words, e.g. ``> 0``, ``0 to 1``, ``one of a, b``."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.minimum is not None and self.maximum is not None:
            lo = ">" if self.exclusive_minimum else ">="
            text = f"{lo} {self.minimum}, <= {self.maximum}"
        elif self.minimum is not None:
            text = f"{'>' if self.exclusive_minimum else '>='} {self.minimum}"
        elif self.maximum is not None:
            text = f"<= {self.maximum}"
        else:
            text = "any"
        return text + (", or None" if self.nullable else "")

    def row(self, name: str) -> dict[str, Any]:
        """One row of a parameter table."""
        return dict(
            name=name,
            type=self.type.__name__,
            default=self.default,
            range=self.range_text(),
            unit=self.unit,
            description=self.description,
        )


# --- results ---------------------------------------------------------------------------------
def split_params(texts: list[str] | tuple[str, ...], option: str = "--param") -> dict[str, str]:
    """Command-line ``KEY=VALUE`` strings -> ``{key: value}`` (values still strings, see
    :meth:`Method.parse_params`); CabenchError naming ``option`` for one without a key or ``=``."""
    values = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq or not key.strip():
            raise CabenchError(f"{option} {text!r}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


@dataclass
class InferenceResult:
    """The output of :meth:`Method.infer`.

    ``estimate``: float32, same shape as the input, **expected spikes per frame** (NaN for bad
    rows and missing frames). ``spike_times``: one float64 array of times in seconds per row,
    rows in C order of the leading axes (row ``t * cells + c`` for trial ``t``, cell ``c`` of a
    3-D input); frame ``k`` is at ``k / frame_rate``. ``seconds``: run time of ``infer``.
    ``params``: the parameter values used, with values derived from the indicator filled in.
    ``warnings``: one line per problem (bad rows, failed rows, warnings raised by the method).
    """

    estimate: np.ndarray
    spike_times: list[np.ndarray]
    frame_rate: float
    method: str
    version: str
    params: dict[str, Any]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    unit: str = OUTPUT_UNIT

    def rate_hz(self) -> np.ndarray:
        """The estimate as a firing rate in Hz (spikes per frame times the frame rate)."""
        return self.estimate * np.float32(self.frame_rate)

    def ragged(self) -> tuple[np.ndarray, np.ndarray]:
        """Spike times (s) flat and offsets in TraceSet's cell-major order (cell, then trial)."""
        from cabench.traceset import ragged

        if self.estimate.ndim == 2:
            return ragged(self.spike_times)
        n_trials, n_cells = self.estimate.shape[:2]
        parts = [self.spike_times[t * n_cells + c] for c in range(n_cells) for t in range(n_trials)]
        return ragged(parts)


def spike_times_from_estimate(estimate: np.ndarray, frame_rate: float) -> np.ndarray:
    """Turn per-frame expected spike counts into spike times (s): the one shared rule.

    With the running total ``C_k = e_0 + ... + e_k`` (NaN counted as 0), frame ``k`` gets
    ``round(C_k) - round(C_{k-1})`` spikes, rounding half up, all placed at the frame time
    ``k / frame_rate``. Fractions are thereby carried forward until they add up to a spike, the
    rule is deterministic, and the number of spikes equals the total estimate rounded half up.
    ``estimate`` is 1-D, non-negative, in expected spikes per frame.
    """
    e = np.nan_to_num(np.asarray(estimate, dtype=np.float64).ravel(), nan=0.0)
    whole = np.floor(np.cumsum(e) + 0.5)
    counts = np.diff(whole, prepend=0.0).astype(np.int64)
    frames = np.repeat(np.arange(e.size), np.maximum(counts, 0))
    return frames / float(frame_rate)


@contextlib.contextmanager
def global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the block, then restore it. Some wrapped packages
    draw from it; seeding per call makes their results independent of call order."""
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


# --- the base class ------------------------------------------------------------------------
class Method:
    """Base class of spike-inference methods (one subclass per algorithm).

    Subclasses set the class attributes and implement :meth:`_infer_row` (or, with
    ``batched = True``, :meth:`_infer_rows`); optionally :meth:`_prepare` (once per
    :meth:`infer` call, e.g. to build a kernel for the frame rate), :meth:`resolved_params`
    and, for supervised methods, :meth:`_fit`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    output_unit: ClassVar[str] = OUTPUT_UNIT
    needs_training: ClassVar[bool] = False
    needs_gpu: ClassVar[bool] = False
    install_hint: ClassVar[str] = "included with cabench"
    #: supervised methods that ship a trained model (``needs_training`` False) but can be
    #: trained anew with :meth:`fit`
    trainable: ClassVar[bool] = False
    #: methods that infer all clean rows at once (:meth:`_infer_rows`), e.g. on a GPU
    batched: ClassVar[bool] = False
    #: importable modules the method needs; ``is_installed`` checks them
    requires: ClassVar[tuple[str, ...]] = ()
    #: distribution whose version ``version()`` reports; cabench's own version when empty
    package: ClassVar[str] = ""
    #: fewest finite frames a row must have (an instance may raise it for its parameters);
    #: shorter rows give NaN and a warning
    min_frames: int = 8

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(self.params) or "none"
            raise CabenchError(
                f"method {self.name}: unknown parameter(s) {', '.join(unknown)}; valid: {valid}"
            )
        values = {k: p.default for k, p in self.params.items()}
        values.update({k: self.params[k].validate(k, v) for k, v in params.items()})
        self.parameters: dict[str, Any] = values
        self._check_params()
        self.is_fitted_ = not self.needs_training

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"{type(self).__name__}({given})"

    # --- description ----------------------------------------------------------------------
    @classmethod
    def is_installed(cls) -> bool:
        """Whether every module the method needs can be imported."""
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    @classmethod
    def is_ready(cls) -> bool:
        """Whether the method runs with its default parameters: installed and, for a method
        that ships a trained model, that model present."""
        return cls.is_installed()

    def model_folder(self) -> Path | None:
        """The folder a trained method reads its model from (None: no model). A suite reruns
        cached cases when a file in it is rewritten."""
        return None

    @classmethod
    def version(cls) -> str:
        """Version of the implementation: the wrapped package's, else cabench's ('' if missing)."""
        if not cls.package:
            from cabench import __version__

            return __version__
        try:
            return importlib.metadata.version(cls.package)
        except importlib.metadata.PackageNotFoundError:
            return ""

    @classmethod
    def indicator_value(cls, indicator: str) -> str | None:
        """The value of the method's ``indicator`` parameter for recordings whose indicator is
        named ``indicator`` in the data (None: leave the parameter at its default). By default
        the simulator preset of that indicator (``OGB1`` -> ``OGB-1``), if there is one."""
        from cabench.simulators.presets import preset_for_indicator

        return preset_for_indicator(indicator)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with strings parsed as on the command line (``"0.3"``, ``"true"``,
        ``"none"``); other values and unknown names are left for the constructor to check."""
        return {k: cls.params[k].parse(k, v) if isinstance(v, str) and k in cls.params else v
                for k, v in values.items()}

    @classmethod
    def param_table(cls) -> list[dict[str, Any]]:
        """One row per parameter: name, type, default, range, unit, description."""
        return [p.row(k) for k, p in cls.params.items()]

    def get_params(self) -> dict[str, Any]:
        """The parameters as given (defaults filled in); ``type(m)(**m.get_params())`` clones."""
        return dict(self.parameters)

    def resolved_params(self) -> dict[str, Any]:
        """The parameters with derived values (e.g. from the indicator) filled in."""
        return dict(self.parameters)

    # --- hooks -------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Check relations between parameters (CabenchError); single values are already valid."""

    def _prepare(self, frame_rate: float) -> None:
        """Called once per :meth:`infer` before the rows, with the frame rate in Hz."""

    def _fit(self, train_tracesets: list) -> None:
        """Train from TraceSets with ground-truth spikes (supervised methods only)."""

    def _infer_row(
        self, y: np.ndarray, frame_rate: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Infer one row: ``y`` float64 dF/F ``(frames,)``, all finite and not constant.

        Returns the estimate per frame in expected spikes per frame (shape of ``y``), and spike
        times in seconds or None (the base class then derives them with
        :func:`spike_times_from_estimate`).
        """
        raise NotImplementedError

    def _infer_rows(
        self, rows: list[np.ndarray], frame_rate: float
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Infer all clean rows at once (``batched`` methods): the :meth:`_infer_row` contract
        for each row of ``rows`` (float64, finite, not constant, all of the same length).
        An exception fails every row of the call; Python warnings are recorded once each."""
        return [self._infer_row(y, frame_rate) for y in rows]

    # --- verbs -------------------------------------------------------------------------------
    def fit(self, train_tracesets: list) -> Method:
        """Train a supervised method on TraceSets with ground-truth spikes; a no-op otherwise."""
        if self.needs_training or self.trainable:
            if not train_tracesets:
                raise CabenchError(f"method {self.name} needs at least one training TraceSet")
            for ts in train_tracesets:
                if not getattr(ts, "has_spikes", False):
                    raise CabenchError(
                        f"method {self.name} trains on ground truth: a TraceSet has no spikes"
                    )
            self._fit(list(train_tracesets))
        self.is_fitted_ = True
        return self

    def infer(self, traces: Any, frame_rate: float | None = None) -> InferenceResult:
        """Infer spikes from dF/F traces.

        ``traces``: float array ``(cells, frames)`` or ``(trials, cells, frames)`` of dF/F as a
        fraction, or a TraceSet (its frame rate is then used when ``frame_rate`` is None).
        ``frame_rate`` in Hz. Returns an :class:`InferenceResult` whose estimate is in expected
        spikes per frame. Raises CabenchError for unusable input as a whole (wrong shape or
        dtype, bad frame rate, method not installed or not trained); bad rows (all NaN,
        constant, too few finite frames, or a failure of the method) give NaN and a recorded
        warning. NaN/inf frames are interpolated for the method and NaN in the estimate.
        """
        t0 = time.perf_counter()
        x, fr = _check_input(traces, frame_rate)
        if not self.is_installed():
            raise CabenchError(f"method {self.name} is not installed: {self.install_hint}")
        if self.needs_training and not self.is_fitted_:
            raise CabenchError(f"method {self.name} must be trained with fit() before infer()")
        self._prepare(fr)
        n_frames = x.shape[-1]
        rows = x.reshape(-1, n_frames)
        estimate = np.full(rows.shape, np.nan, np.float32)
        spike_times: list[np.ndarray] = []
        notes: list[str] = []
        raised: Counter[str] = Counter()
        if self.batched:
            spike_times = self._batch(rows, x.shape, fr, estimate, notes, raised)
        else:
            for i, row in enumerate(rows):
                label = _row_label(i, x.shape)
                e, times = self._one_row(row, fr, label, notes, raised)
                if e is not None:
                    estimate[i] = e
                spike_times.append(times)
        notes += [
            f"{n} row(s): {msg}" if n > 1 else msg for msg, n in raised.items()
        ]
        return InferenceResult(
            estimate=estimate.reshape(x.shape),
            spike_times=spike_times,
            frame_rate=fr,
            method=self.name,
            version=self.version(),
            params=self.resolved_params(),
            seconds=time.perf_counter() - t0,
            warnings=notes,
        )

    def _clean_row(
        self, row: np.ndarray, label: str, notes: list[str]
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """The row as float64 with NaN/inf bridged, or None if unusable; its finite mask."""
        y = row.astype(np.float64)
        finite = np.isfinite(y)
        n_ok = int(finite.sum())
        if n_ok == 0:
            notes.append(f"{label}: no finite frames; estimate set to NaN")
            return None, finite
        if n_ok < self.min_frames:
            notes.append(
                f"{label}: {n_ok} finite frame(s), fewer than the {self.min_frames} that "
                f"{self.name} needs; estimate set to NaN"
            )
            return None, finite
        if n_ok < y.size:
            idx = np.flatnonzero(finite)
            y = np.interp(np.arange(y.size), idx, y[idx])
            notes.append(
                f"{label}: {y.size - n_ok} NaN/inf frame(s) interpolated; estimate NaN there"
            )
        if y.max() == y.min():
            notes.append(f"{label}: constant trace; estimate set to NaN")
            return None, finite
        return y, finite

    def _one_row(
        self, row: np.ndarray, fr: float, label: str, notes: list[str], raised: Counter
    ) -> tuple[np.ndarray | None, np.ndarray]:
        no_spikes = np.zeros(0)
        y, finite = self._clean_row(row, label, notes)
        if y is None:
            return None, no_spikes
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                e, times = self._infer_row(y, fr)
        except Exception as exc:  # one failing row must not stop the others
            notes.append(f"{label}: {self.name} failed ({type(exc).__name__}: {exc}); NaN")
            return None, no_spikes
        for w in caught:
            raised[f"{w.category.__name__}: {w.message}"] += 1
        return self._finish_row(e, times, y, finite, fr, label, notes)

    def _batch(
        self, rows: np.ndarray, shape: tuple[int, ...], fr: float, estimate: np.ndarray,
        notes: list[str], raised: Counter
    ) -> list[np.ndarray]:
        """All rows through :meth:`_infer_rows` at once; fills ``estimate``, returns times."""
        spike_times = [np.zeros(0) for _ in range(len(rows))]
        clean = []
        for i, row in enumerate(rows):
            y, finite = self._clean_row(row, _row_label(i, shape), notes)
            if y is not None:
                clean.append((i, y, finite))
        if not clean:
            return spike_times
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results = self._infer_rows([y for _, y, _ in clean], fr)
        except Exception as exc:  # recorded for every row, never raised
            for i, _, _ in clean:
                notes.append(f"{_row_label(i, shape)}: {self.name} failed "
                             f"({type(exc).__name__}: {exc}); NaN")
            return spike_times
        for w in caught:
            raised[f"{w.category.__name__}: {w.message}"] += 1
        for (i, y, finite), (e, times) in zip(clean, results, strict=True):
            e, spike_times[i] = self._finish_row(e, times, y, finite, fr,
                                                 _row_label(i, shape), notes)
            if e is not None:
                estimate[i] = e
        return spike_times

    def _finish_row(
        self, e: np.ndarray, times: np.ndarray | None, y: np.ndarray, finite: np.ndarray,
        fr: float, label: str, notes: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Check and normalise one row's output: float32, >= 0, NaN at missing frames."""
        e = np.asarray(e, dtype=np.float64).ravel()
        if e.shape != y.shape:
            raise RuntimeError(
                f"method {self.name} returned {e.shape[0]} values for {y.size} frames"
            )
        bad = ~np.isfinite(e) & finite
        if bad.any():
            notes.append(f"{label}: {self.name} gave {int(bad.sum())} non-finite value(s)")
        e = np.maximum(e, 0.0)  # NaN stays NaN
        e[~finite] = np.nan
        if times is None:
            times = spike_times_from_estimate(e, fr)
        else:
            times = np.sort(np.asarray(times, dtype=np.float64).ravel())
            k = np.clip(np.floor(times * fr + 0.5).astype(np.int64), 0, y.size - 1)
            times = times[np.isfinite(e[k])]
        return e.astype(np.float32), times


def _check_input(traces: Any, frame_rate: float | None) -> tuple[np.ndarray, float]:
    if hasattr(traces, "traces") and hasattr(traces, "frame_rate"):  # a TraceSet
        if frame_rate is None:
            frame_rate = traces.frame_rate
        traces = traces.traces
    x = np.asarray(traces)
    if x.ndim not in (2, 3):
        raise CabenchError(
            f"traces must be (cells, frames) or (trials, cells, frames), got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise CabenchError(
            f"traces must be floating-point dF/F (a fraction), got dtype {x.dtype}; "
            "convert with .astype(np.float32)"
        )
    if x.shape[-1] == 0 or x.size == 0:
        raise CabenchError(f"traces are empty (shape {x.shape})")
    if frame_rate is None:
        raise CabenchError("a frame rate (Hz) is needed")
    try:
        fr = float(frame_rate)
    except (TypeError, ValueError):
        raise CabenchError(f"frame rate must be a number of Hz, got {frame_rate!r}") from None
    if not np.isfinite(fr) or fr <= 0:
        raise CabenchError(f"frame rate must be a positive number of Hz, got {frame_rate}")
    return x, fr


def _row_label(i: int, shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"row {i} (trial {i // shape[1]}, cell {i % shape[1]})"
    return f"row {i} (cell {i})"
