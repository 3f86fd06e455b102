"""``cnn``: a 1-D convolutional network trained on ground truth (the CASCADE recipe, own code).

Torch is imported only when the method runs or trains (:mod:`cabench.benchmark.learned`), so
the registry imports without it.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from cabench.benchmark.methods.base import Method, Param
from cabench.benchmark.methods.tools import integrate_back, resample_rows
from cabench.conditions import RATE_TOLERANCE
from cabench.errors import CabenchError
from cabench.indicators import INDICATORS, canonical_indicator, indicator_family

#: the packaged default model folder (``cabench/benchmark/models/cnn-default``)
DEFAULT_MODEL = "default"


def default_model_folder() -> Path:
    """Where the packaged default model lives (it may not exist yet)."""
    return Path(str(files("cabench.benchmark"))) / "models" / "cnn-default"


class Cnn(Method):
    """Supervised spike inference with a small 1-D CNN (Rupprecht et al. 2021's recipe).

    Each network maps a 64-frame window of raw dF/F at the model's frame rate (30 Hz by
    default) to the expected number of spikes in the window's frame 32 (32 frames before, 31
    after); the same index is used in training and prediction. A model is a folder written by
    ``cabench train-method cnn`` (``config.json``, ``weights.pt``, ``training_curve.csv``).

    Prediction, per call: rows are FFT-resampled to the model's rate when the rates differ by
    more than 5 % (:func:`cabench.conditions.resample`); each row's noise level nu
    (:func:`cabench.noise_level.noise_level_nu`, on the resampled row, as in training) picks the
    ensemble of the nearest trained level (or conditions the networks; nu is clipped to the
    trained range, with a warning above it); the networks' mean is clipped at 0; the estimate
    is brought back to the recording's frames by integrating the per-model-frame rate over each
    original frame's interval, which keeps the spike count exactly. The ends are predicted from
    windows padded with the edge values; rows shorter than half a window get a warning.
    Whole traces go through the networks in one sliding pass (see
    :mod:`cabench.benchmark.learned.model`) in batches of ``batch_size`` frames, on the GPU
    when there is one.

    :meth:`fit` trains a new model on TraceSets with ground truth, with the given model's recipe
    (the published recipe if there is none), or with recipe fields passed as keywords.

    A model trained with ``indicator_conditioning`` also takes the recordings' indicator
    (``indicator``; suites and ``cabench infer`` fill it in from the data): its family
    (:func:`cabench.indicators.indicator_family`) conditions the networks, and an indicator
    whose family the model has not seen is treated as unknown, with a warning.
    """

    name = "cnn"
    description = "1-D CNN on 64-frame dF/F windows, trained on ground truth (CASCADE recipe)"
    params = {
        "model": Param(
            str, DEFAULT_MODEL, "model folder written by 'cabench train-method cnn'; 'default': "
            "the model shipped with cabench",
        ),
        "device": Param(str, "auto", "where the networks run (auto: CUDA when available)",
                        choices=("auto", "cpu", "cuda")),
        "batch_size": Param(int, 32768, "frames per forward pass (memory against speed)",
                            minimum=1),
        "indicator": Param(
            str, None, "indicator of the recordings, for a model trained with "
            "--indicator-conditioning (others ignore it); None or an indicator the model has "
            "no family of: predicted as an unknown indicator",
            choices=INDICATORS, nullable=True,
        ),
    }
    needs_training = False
    trainable = True
    batched = True
    requires = ("torch",)
    install_hint = "pip install torch (CPU only: pip install torch --index-url " \
        "https://download.pytorch.org/whl/cpu)"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.model_: Any = None  # a CnnModel once loaded or fitted
        self.model_path_: str | None = None
        self._recipe_overrides: dict[str, Any] = {}

    @classmethod
    def indicator_value(cls, indicator: str) -> str | None:
        """The canonical name of the data's indicator (any indicator cabench knows)."""
        return canonical_indicator(indicator)

    @classmethod
    def is_ready(cls) -> bool:
        """Installed and the default model shipped (``model="default"`` works)."""
        return cls.is_installed() and (default_model_folder() / "config.json").is_file()

    # --- model ---------------------------------------------------------------------------------
    def model_folder(self) -> Path:
        m = self.parameters["model"]
        return default_model_folder() if m == DEFAULT_MODEL else Path(m)

    def _load(self) -> Any:
        if self.model_ is not None:
            return self.model_
        from cabench.benchmark.learned.train import load_model

        folder = self.model_folder()
        if not (folder / "config.json").is_file():
            if self.parameters["model"] == DEFAULT_MODEL:
                raise CabenchError("method cnn: no default model shipped yet; train one with "
                                   "cabench train-method cnn and pass model=<folder>")
            raise CabenchError(f"method cnn: model folder {folder} not found (or no "
                               "config.json in it)")
        self.model_, _ = load_model(folder)
        self.model_path_ = str(folder)
        return self.model_

    def resolved_params(self) -> dict[str, Any]:
        p = dict(self.parameters)
        if self.model_ is not None:
            r = self.model_.recipe
            p.update(model_path=self.model_path_ or "(trained in memory by fit)",
                     model_frame_rate=r.frame_rate, noise_levels=list(r.noise_levels),
                     noise_conditioning=r.noise_conditioning)
            if r.inputs != "dff":
                p.update(model_inputs=r.inputs)
            if r.indicator_conditioning:
                p.update(model_families=list(r.families), family=r.families[self._family()])
        return p

    def _family(self) -> int:
        """Index of the ``indicator`` parameter's family in the model's (0: unknown)."""
        families = self.model_.recipe.families
        family = indicator_family(self.parameters["indicator"])
        return families.index(family) if family in families else 0

    def fit(self, train_tracesets: list, **recipe: Any) -> Cnn:
        """Train a new model on TraceSets with ground-truth spikes (replaces the loaded one).

        ``recipe``: fields of :class:`~cabench.benchmark.learned.recipe.Recipe` to change
        (e.g. ``epochs=5``); the rest come from the given model's recipe, else the defaults.
        """
        self._recipe_overrides = recipe
        return super().fit(train_tracesets)

    def _fit(self, train_tracesets: list) -> None:
        from cabench.benchmark.learned.recipe import Recipe
        from cabench.benchmark.learned.train import train_model

        base = Recipe()
        try:
            base = self._load().recipe
        except CabenchError:
            pass
        recipe = base.replace(**self._recipe_overrides)
        self.model_, self.training_, _ = train_model(train_tracesets, recipe,
                                                     device=self.parameters["device"])
        self.model_path_ = None

    # --- inference -------------------------------------------------------------------------------
    def _prepare(self, frame_rate: float) -> None:
        from cabench.benchmark.learned.train import resolve_device

        self._load()
        self._device = resolve_device(self.parameters["device"])

    def _infer_rows(self, rows: list[np.ndarray], frame_rate: float
                    ) -> list[tuple[np.ndarray, None]]:
        from cabench.noise_level import noise_level_nu

        model = self.model_
        r = model.recipe
        x = np.stack(rows)  # (rows, frames); every row has the input's length
        n_orig = x.shape[1]
        resampled = abs(frame_rate / r.frame_rate - 1.0) > RATE_TOLERANCE
        rate = frame_rate
        if resampled:
            x, rate = resample_rows(x, frame_rate, r.frame_rate)
        n = x.shape[1]
        if n < r.window // 2:
            warnings.warn(f"traces of {n} frames at the model's {r.frame_rate:g} Hz are much "
                          f"shorter than its {r.window}-frame window; padded with edge values",
                          stacklevel=2)
        nu = noise_level_nu(x, rate)
        top = max(r.noise_levels)
        for _ in range(int(np.sum(nu > top * 1.05))):
            warnings.warn(f"noise level above the model's highest ({top:g}); treated as "
                          f"{top:g}", stacklevel=2)
        family = 0
        if r.indicator_conditioning:
            family, indicator = self._family(), self.parameters["indicator"]
            if indicator is not None and family == 0:
                warnings.warn(f"the model has no training data of the "
                              f"{indicator_family(indicator)} family (it has "
                              f"{', '.join(r.families[1:]) or 'none'}); predicted as an unknown "
                              "indicator", stacklevel=2)
        est = model.predict(list(x.astype(np.float32)), nu, np.full(len(x), family),
                            device=self._device, batch_frames=self.parameters["batch_size"])
        est = np.maximum(np.stack(est).astype(np.float64), 0.0)
        if resampled:
            est = integrate_back(est, n_orig)
        return [(e, None) for e in est]

