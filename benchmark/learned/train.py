"""Training ``cnn`` models and reading/writing model folders.

:func:`train_model` trains every network of a :class:`~cabench.benchmark.learned.recipe.Recipe`
on TraceSets with ground-truth spikes; :func:`save_model` writes a model folder atomically;
:func:`load_model` reads one; :func:`merge_models` pools the networks of several. A model folder
holds

- ``config.json``: format, the full recipe, the architecture, the noise level of each ensemble,
  and the training record (datasets and their recording counts, held-out recordings, samples,
  seed, device, versions, times, command line);
- ``weights.pt``: the state dict of :class:`~cabench.benchmark.learned.model.CnnModel`
  (``torch.save``; read with ``torch.load(..., weights_only=True)``, so loading a model runs no
  code from the file);
- ``training_curve.csv``: one row per network and epoch: group, noise level(s), member, epoch,
  train loss, validation loss (weighted MSE on held-out recordings; empty if none) and seconds.

Randomness: one :class:`numpy.random.SeedSequence` from ``recipe.seed`` feeds the split into
training and validation recordings, the noise of every replica, the choice of samples, and one
:class:`torch.Generator` per network for its initial weights and batch order; nothing reads a
global seed. On CUDA, forward passes run under bf16 autocast; on CPU in float32.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cabench.benchmark.learned.data import (
    Recording,
    Samples,
    build_samples,
    eligible,
    prepare,
    split_recordings,
    time_scaled,
)
from cabench.benchmark.learned.model import CascadeNet, CnnModel, init_weights
from cabench.benchmark.learned.recipe import Recipe
from cabench.errors import CabenchError
from cabench.folder_config import read_folder_config
from cabench.indicators import UNKNOWN
from cabench.traceset import TraceSet

FORMAT = "cabench-cnn"
FORMAT_VERSION = 1
WEIGHTS = "weights.pt"
CURVE_COLUMNS = ("group", "noise_levels", "member", "epoch", "train_loss", "val_loss",
                 "seconds")
#: held-out samples per network at most this fraction of ``max_samples`` (and at least 1,000)
VAL_SHARE = 0.1

Progress = Callable[[int, int], None]  # (steps just done, total steps as known now)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is a CabenchError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CabenchError("device cuda asked for, but torch sees no CUDA GPU (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise CabenchError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


class SegmentBatches:
    """Batches of segments cut from :class:`Samples` on the fly (``unfold`` gives views: the
    inputs of a batch are the only copy)."""

    def __init__(self, samples: Samples, recipe: Recipe, device: torch.device) -> None:
        span = recipe.segment + recipe.window - 1
        x, y, w = (torch.from_numpy(a).to(device) for a in (samples.x, samples.y, samples.w))
        if x.dim() == 1:
            x = x[None]
        if x.shape[-1] < span:  # no samples (e.g. no validation recordings)
            x = torch.zeros(recipe.channels, span, device=device)
            y = w = torch.zeros(span, device=device)
        self.inputs = x.unfold(1, span, 1)  # (channels, total - span + 1, span)
        self.y = y.unfold(0, recipe.segment, 1)
        self.w = w.unfold(0, recipe.segment, 1)
        self.start = torch.from_numpy(samples.start).to(device)
        self.nu = torch.from_numpy(samples.nu).to(device)
        self.family = torch.from_numpy(samples.family).to(device)
        self.before = recipe.before
        self.n = samples.n

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """For segments ``idx``: inputs ``(B, channels, segment + window - 1)``, targets and
        weights ``(B, segment)``, noise levels and indicator families ``(B,)``."""
        s = self.start[idx]
        return (self.inputs[:, s - self.before].transpose(0, 1), self.y[s], self.w[s],
                self.nu[idx], self.family[idx])


def _loss(net: CascadeNet, batch: tuple[torch.Tensor, ...], device: torch.device
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Weighted squared error summed over the batch's target frames, their number)."""
    inputs, y, w, nu, family = batch
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pred = net.sliding(inputs, nu, family)
    return (w * (pred.float() - y) ** 2).sum(), (w > 0).sum()


def evaluate(net: CascadeNet, data: SegmentBatches, device: torch.device,
             batch_size: int = 256) -> float:
    """Weighted mean squared error of ``net`` over all target frames of ``data`` (NaN if
    none); ``batch_size`` segments per pass."""
    if data.n == 0:
        return float("nan")
    net.eval()
    total = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    with torch.inference_mode():
        for b in range(0, data.n, batch_size):
            idx = torch.arange(b, min(b + batch_size, data.n), device=device)
            err, n = _loss(net, data.get(idx), device)
            total += err
            count += n
    return float(total / count.clamp_min(1))


def fit_network(
    net: CascadeNet,
    train: SegmentBatches,
    val: SegmentBatches,
    recipe: Recipe,
    device: torch.device,
    generator: torch.Generator,
    progress: Progress | None = None,
    total_steps: Callable[[], int] | None = None,
) -> list[dict[str, float]]:
    """Train one network in place; returns one row per epoch (train/val loss, seconds)."""
    net.to(device)
    if recipe.optimizer == "adagrad":  # Keras's Adagrad starts its accumulator at 0.1
        opt: torch.optim.Optimizer = torch.optim.Adagrad(
            net.parameters(), lr=recipe.learning_rate, initial_accumulator_value=0.1, eps=1e-7)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=recipe.learning_rate)
    bs = _segments_per_batch(recipe)
    rows = []
    for epoch in range(recipe.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(train.n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        count = torch.zeros((), device=device)
        for b in range(0, train.n, bs):
            batch = train.get(perm[b : b + bs])
            if recipe.indicator_conditioning and recipe.indicator_dropout > 0:
                drop = torch.rand(batch[4].shape, generator=generator) < recipe.indicator_dropout
                batch = (*batch[:4], batch[4].masked_fill(drop.to(device), 0))
            err, n = _loss(net, batch, device)
            opt.zero_grad(set_to_none=True)
            (err / n.clamp_min(1)).backward()
            opt.step()
            total += err.detach()
            count += n
            if progress is not None:
                progress(1, total_steps() if total_steps else 0)
        train_loss = float(total / count.clamp_min(1))
        val_loss = evaluate(net, val, device)
        rows.append(dict(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss,
                         seconds=time.perf_counter() - t0))
    net.eval()
    return rows


def _segments_per_batch(recipe: Recipe) -> int:
    return max(1, recipe.batch_size // recipe.segment)


def _steps(n_segments: int, recipe: Recipe) -> int:
    return recipe.epochs * math.ceil(n_segments / _segments_per_batch(recipe))


def train_model(
    tracesets: list[TraceSet],
    recipe: Recipe | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[CnnModel, dict[str, Any], list[dict[str, Any]]]:
    """Train the networks of ``recipe`` (default: the published recipe) on ``tracesets``.

    Returns the model, a training record (for ``config.json``) and the training curve (rows of
    :data:`CURVE_COLUMNS`). Noise levels at which no training cell is clean enough are left
    out of the model with a note in the record (CabenchError if none is left).
    ``progress(steps, total)`` is called after every optimiser step.
    """
    recipe = recipe or Recipe()
    dev = resolve_device(device)
    t_start = time.perf_counter()
    if not tracesets:
        raise CabenchError("no recordings to train on")
    say = log or (lambda _msg: None)
    split_seq, data_seq, net_seq = np.random.SeedSequence(recipe.seed).spawn(3)
    say(f"preparing {len(tracesets)} recordings at {recipe.frame_rate:g} Hz")
    recordings = prepare(tracesets, recipe)
    train_idx, val_idx = split_recordings(recordings, recipe.val_fraction,
                                          np.random.default_rng(split_seq))
    train_recs = time_scaled([recordings[i] for i in train_idx], recipe)
    val_recs = [recordings[i] for i in val_idx]
    levels = [v for v in recipe.noise_levels if eligible(train_recs, v)]
    dropped = sorted(set(recipe.noise_levels) - set(levels))
    if not levels:
        raise CabenchError(
            f"no training recording is as clean as any noise level {list(recipe.noise_levels)}"
            f" (their nu: {_nu_range(train_recs)})"
        )
    if dropped:
        say(f"noise level(s) {dropped} left out: no training cell is that clean")
        recipe = recipe.replace(noise_levels=levels)
    if recipe.indicator_conditioning:
        seen = sorted({r.family for r in train_recs} - {UNKNOWN})
        recipe = recipe.replace(families=(UNKNOWN, *seen))
        say(f"indicator families: {', '.join(seen) or 'none'}")
    model = CnnModel(recipe)
    data_entropy = [int(v) for v in data_seq.generate_state(2)]
    net_seeds = net_seq.generate_state(recipe.n_networks, dtype=np.uint64)
    est = _steps(math.ceil(recipe.max_samples / recipe.segment), recipe)
    known: dict[int, int] = {}

    def total_steps() -> int:
        return sum(known.values()) + (len(recipe.groups) - len(known)) * recipe.ensemble_size \
            * est

    curve: list[dict[str, Any]] = []
    samples: dict[str, Any] = {}
    for g, group_levels in enumerate(recipe.groups):
        label = ",".join(f"{v:g}" for v in group_levels)
        say(f"building samples at nu {label}")
        train = build_samples(train_recs, recipe, group_levels, recipe.max_samples,
                              [*data_entropy, g, 0])
        val_cap = max(1000, int(VAL_SHARE * recipe.max_samples))
        val = build_samples(val_recs, recipe, group_levels, val_cap, [*data_entropy, g, 1],
                            replicas=False)
        if train.n == 0:  # cannot happen after the eligibility test, but be explicit
            raise CabenchError(f"no training samples at noise level(s) {label}")
        known[g] = recipe.ensemble_size * _steps(train.n, recipe)
        samples[label] = dict(train=train.frames, validation=val.frames,
                              segments=train.n, per_dataset=train.counts)
        tb, vb = SegmentBatches(train, recipe, dev), SegmentBatches(val, recipe, dev)
        for m, net in enumerate(model.groups[g]):
            gen = torch.Generator().manual_seed(int(net_seeds[g * recipe.ensemble_size + m]))
            init_weights(net, gen)
            rows = fit_network(net, tb, vb, recipe, dev, gen, progress, total_steps)
            curve += [dict(group=g, noise_levels=label, member=m, **row) for row in rows]
            last = rows[-1]
            say(f"nu {label} network {m + 1}/{recipe.ensemble_size}: train loss "
                f"{last['train_loss']:.4g}, validation loss {last['val_loss']:.4g}")
        del tb, vb, train, val
    model.cpu().eval()
    record = dict(
        datasets=_count(train_recs),
        validation_datasets=_count(val_recs),
        validation_recordings=[r.name for r in val_recs],
        levels_left_out=dropped,
        samples=samples,
        device=str(dev),
        train_seconds=round(time.perf_counter() - t_start, 3),
        versions=_versions(),
        threads=torch.get_num_threads(),
    )
    return model, record, curve


def _count(recs: list[Recording]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in recs:
        out[r.dataset] = out.get(r.dataset, 0) + 1
    return dict(sorted(out.items()))


def _nu_range(recs: list[Recording]) -> str:
    nu = np.concatenate([r.nu for r in recs]) if recs else np.zeros(0)
    nu = nu[np.isfinite(nu)]
    return f"{nu.min():.3g}-{nu.max():.3g}" if nu.size else "none"


def _versions() -> dict[str, str]:
    from cabench import __version__

    return dict(cabench=__version__, torch=torch.__version__, numpy=np.__version__,
                python=platform.python_version())


# --- model folders ------------------------------------------------------------------------------
def model_config(model: CnnModel, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` content of a model."""
    r = model.recipe
    film_input = "log nu, indicator family" if r.indicator_conditioning else "log nu"
    return dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        output_unit="expected spikes per frame",
        recipe=r.to_dict(),
        architecture=dict(
            layers=(f"conv({r.filters[0]}, k{r.kernels[0]}) -> conv({r.filters[1]}, "
                    f"k{r.kernels[1]}) -> maxpool 2 -> conv({r.filters[2]}, k{r.kernels[2]}) -> "
                    f"maxpool 2 -> dense({r.dense} per step, {r.steps} steps) -> flatten -> "
                    "dense(1); ReLU; " + (f"FiLM({film_input}) after each convolution"
                                         if r.noise_conditioning else "no noise input")),
            window=r.window,
            target_index=r.before,
            frames_before=r.before,
            frames_after=r.after,
            parameters_per_network=r.n_parameters(),
            networks=r.n_networks,
        ),
        ensembles=[dict(group=g, noise_levels=list(levels), networks=r.ensemble_size)
                   for g, levels in enumerate(r.groups)],
        weights=WEIGHTS,
        training=record or {},
    )


def save_model(model: CnnModel, folder: str | Path, record: dict[str, Any] | None = None,
               curve: list[dict[str, Any]] | None = None, force: bool = False) -> Path:
    """Write a model folder atomically: into ``<folder>.tmp-XXXX``, renamed when complete.

    An existing ``folder`` is a CabenchError unless ``force`` (then it is replaced).
    """
    folder = Path(folder)
    check_output(folder, force)
    tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.tmp-", dir=folder.parent))
    try:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        with open(tmp / "config.json", "w", encoding="utf-8") as f:
            json.dump(model_config(model, record), f, indent=2)
            f.write("\n")
        with open(tmp / "training_curve.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for row in curve or []:
                w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v)
                            for k, v in row.items()})
        os.chmod(tmp, 0o755)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def check_output(folder: str | Path, force: bool) -> None:
    """CabenchError if ``folder`` cannot be written (exists without ``force``, or its parent
    is not a folder); missing parent folders are created."""
    folder = Path(folder)
    if folder.exists() and not force:
        raise CabenchError(f"{folder} exists; pass --force to replace it")
    if folder.exists() and not folder.is_dir():
        raise CabenchError(f"{folder} exists and is not a folder")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CabenchError(f"cannot write {folder}: {folder.parent} is not a folder") from None


def merge_models(folders: list[str | Path]) -> tuple[CnnModel, dict[str, Any]]:
    """One model whose ensembles hold the networks of every model of ``folders`` (in order).

    The models must share their recipe except ``seed`` and ``ensemble_size`` (e.g. the same
    recipe trained with different seeds, one per machine); the merged ensemble predicts the
    mean of all their networks. Returns the model and a training record listing each source
    (folder, seed, networks, training record). CabenchError naming the differing fields.
    """
    if not folders:
        raise CabenchError("no model folders to merge")
    loaded = [(Path(f), *load_model(f)) for f in folders]
    def shared(model: CnnModel) -> dict[str, Any]:  # the fields that must agree
        return {k: v for k, v in model.recipe.to_dict().items()
                if k not in ("seed", "ensemble_size")}

    first = shared(loaded[0][1])
    for folder, model, _ in loaded[1:]:
        other = shared(model)
        diff = sorted(k for k in first if first[k] != other[k])
        if diff:
            raise CabenchError(f"cannot merge {folder} with {loaded[0][0]}: their recipes "
                               f"differ in {', '.join(diff)}")
    size = sum(m.recipe.ensemble_size for _, m, _ in loaded)
    merged = CnnModel(loaded[0][1].recipe.replace(ensemble_size=size))
    offset = 0
    for _, model, _ in loaded:
        for g, nets in enumerate(model.groups):
            for m, net in enumerate(nets):
                merged.groups[g][offset + m].load_state_dict(net.state_dict())
        offset += model.recipe.ensemble_size
    record = dict(merged_from=[dict(folder=str(f), seed=m.recipe.seed,
                                    networks=m.recipe.ensemble_size, training=cfg["training"])
                               for f, m, cfg in loaded])
    return merged.eval(), record


def load_model(folder: str | Path) -> tuple[CnnModel, dict[str, Any]]:
    """The model of a model folder and its config; CabenchError for a missing or bad folder."""
    folder = Path(folder)
    cfg = read_folder_config(folder, FORMAT, FORMAT_VERSION, "cnn model folder")
    model = CnnModel(Recipe.from_dict(cfg["recipe"]))
    try:
        state = torch.load(folder / cfg.get("weights", WEIGHTS), map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise CabenchError(f"{folder}: cannot load the weights "
                           f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return model.eval(), cfg
