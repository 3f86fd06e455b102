"""``cascade``: CASCADE (Rupprecht et al. 2021) through the external ``cascade2p`` package.

``cascade2p`` is not on PyPI and needs TensorFlow; it is imported only when the method runs, so
the registry imports without it and ``is_installed()`` is simply false.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cabench.benchmark.methods.base import Method, Param
from cabench.benchmark.methods.tools import integrate_back, resample_rows
from cabench.conditions import RATE_TOLERANCE
from cabench.errors import CabenchError

#: frames of context CASCADE's networks see (32 before and after): its estimate is NaN in the
#: first and last 32 frames of a trace
WINDOW = 64
_EXAMPLE = "e.g. Pretrained_models/Global_EXC_30Hz_smoothing50ms"


def read_sampling_rate(folder: Path) -> float:
    """The ``sampling_rate`` (Hz) in a CASCADE model folder's ``config.yaml``.

    Read with PyYAML when it imports, otherwise from the top-level ``sampling_rate:`` line.
    CabenchError when the folder, the file or the key is missing or the rate is not a positive
    number.
    """
    if not folder.is_dir():
        raise CabenchError(f"method cascade: model folder {folder} not found ({_EXAMPLE})")
    config = folder / "config.yaml"
    if not config.is_file():
        raise CabenchError(f"method cascade: no config.yaml in model folder {folder}; is it a "
                           f"CASCADE pretrained model folder ({_EXAMPLE})?")
    text = config.read_text(encoding="utf-8", errors="replace")
    try:
        import yaml
    except ImportError:
        m = re.search(r"^sampling_rate\s*:\s*['\"]?([^'\"#\s]+)", text, flags=re.MULTILINE)
        value: Any = m.group(1) if m else None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise CabenchError(f"method cascade: {config} is not valid YAML ({problem})") from None
        value = data.get("sampling_rate") if isinstance(data, dict) else None
    if value is None:
        raise CabenchError(f"method cascade: {config} has no sampling_rate")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not np.isfinite(rate) or rate <= 0:
        raise CabenchError(f"method cascade: sampling_rate in {config} must be a positive "
                           f"number of Hz, got {value!r}")
    return rate


class Cascade(Method):
    """CASCADE's pretrained networks (``cascade2p.cascade.predict``) in cabench's conventions.

    A model is a CASCADE pretrained model folder (downloaded with
    ``cascade2p.cascade.download_model``): ``config.yaml`` with the model's ``sampling_rate``
    and the trained Keras ensembles. The folder's name is CASCADE's model name, its parent
    CASCADE's ``model_folder``.

    Per call, all clean rows go to ``cascade.predict`` at once (CASCADE picks each row's
    ensemble by its own noise level). Rows are FFT-resampled to the model's rate when the rates
    differ by more than 5 % (:func:`tools.resample_rows`, as ``cnn`` does). CASCADE's output is
    NaN in the first and last 32 frames (set to 0 here: no estimate there) and negatives are
    clipped to 0. CASCADE's prediction code centres its 64-frame window one frame differently
    from its training code, so its published output is one frame early; it is delayed by
    ``shift_frames`` model frames (1 by default, 0 gives the published output). The estimate is
    then integrated back over each recording frame (:func:`tools.integrate_back`, conserving
    the spike count) and is in expected spikes per frame at the input frame rate.
    """

    name = "cascade"
    description = "CASCADE (Rupprecht et al. 2021) pretrained networks via cascade2p"
    params = {
        "model": Param(
            str, "", f"CASCADE pretrained model folder ({_EXAMPLE}; config.yaml and the "
            "trained networks in it); required, there is no default model",
        ),
        "shift_frames": Param(
            int, 1, "delay applied to cascade2p's output: its prediction window is centred one "
            "frame off its training window, so the published output is one frame early "
            "(0: as published)", unit="frames at the model's rate", minimum=0,
            maximum=WINDOW // 2,
        ),
    }
    batched = True
    requires = ("cascade2p",)
    package = "cascade2p"
    install_hint = (
        "not on PyPI: pip install git+https://github.com/HelmchenLabSoftware/Cascade and "
        "tensorflow, download a pretrained model folder (cascade2p.cascade.download_model) and "
        "pass model=PATH"
    )

    @classmethod
    def is_ready(cls) -> bool:
        """False: no pretrained model ships, so ``model=PATH`` is always needed."""
        return False

    def resolved_params(self) -> dict[str, Any]:
        p = dict(self.parameters)
        if getattr(self, "model_rate_", None) is not None:
            p.update(model_path=str(self.model_folder_), model_frame_rate=self.model_rate_)
        return p

    def _prepare(self, frame_rate: float) -> None:
        if not self.parameters["model"]:
            raise CabenchError(f"method cascade needs model=PATH, a CASCADE pretrained model "
                               f"folder ({_EXAMPLE})")
        folder = Path(self.parameters["model"]).expanduser().resolve()
        self.model_rate_ = read_sampling_rate(folder)
        self.model_folder_ = folder

    def _infer_rows(self, rows: list[np.ndarray], frame_rate: float
                    ) -> list[tuple[np.ndarray, None]]:
        from cascade2p import cascade

        folder, model_rate = self.model_folder_, self.model_rate_
        x = np.stack(rows)  # (rows, frames) dF/F as a fraction; all rows have the same length
        n_orig = x.shape[1]
        resampled = abs(frame_rate / model_rate - 1.0) > RATE_TOLERANCE
        if resampled:
            x, _ = resample_rows(x, frame_rate, model_rate)
        n = x.shape[1]
        if n <= WINDOW:
            warnings.warn(f"traces of {n} frames at the model's {model_rate:g} Hz are not "
                          f"longer than CASCADE's {WINDOW}-frame window; estimate 0",
                          stacklevel=2)
        est = cascade.predict(folder.name, x, model_folder=str(folder.parent),
                              padding=np.nan, verbosity=0)
        est = np.asarray(est, dtype=np.float64).reshape(x.shape)
        est = np.maximum(np.where(np.isnan(est), 0.0, est), 0.0)  # no estimate at the ends
        shift = self.parameters["shift_frames"]
        if shift:
            delayed = np.zeros_like(est)
            delayed[:, shift:] = est[:, : max(n - shift, 0)]
            est = delayed
        if resampled:
            est = integrate_back(est, n_orig)
        return [(e, None) for e in est]
