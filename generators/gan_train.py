"""Training CalciumGAN (WGAN-GP) into a run folder, resuming it, and generating traces from it.

A run folder holds

- ``config.json``: format and format version, the architecture (:class:`GanConfig`), the
  training settings (:class:`TrainConfig`, total steps resolved), the data record (files, cells,
  frame rate, cell names, scaling bounds, window counts, a SHA-256 of the training frames),
  versions and the command line. Written first, atomically (temporary folder, then rename).
- ``checkpoint.pt``: generator, critic, both Adam states and the number of generator steps done
  (``torch.save``; read with ``torch.load(weights_only=True)``); written to a temporary name and
  renamed (``os.replace``) every ``checkpoint_every`` steps and at the end.
- ``log.csv``: every ``log_every`` steps: step, critic loss, generator loss, gradient penalty,
  Wasserstein estimate (mean critic score of real minus generated windows, over the step's
  critic updates), the same estimate on held-out validation windows (empty without them), the
  seconds since the (re)start and, for a conditional run with a noise path, its reconstruction
  term and generated-to-real noise-level ratio (:mod:`cabench.generators.conditional_train`;
  empty otherwise).

Randomness: initial weights come from ``seed``; everything drawn in generator step ``s`` (real
batches, one fresh batch per critic update; latents; interpolation weights; phase shifts) comes
from a :class:`torch.Generator` seeded by ``(seed, rank, s)``. A run resumed from a checkpoint
therefore repeats exactly the schedule of an uninterrupted one, and a checkpoint needs no RNG
state. Nothing reads or sets a global seed.

Optimiser: Adam, lr 1e-4, betas (0.5, 0.9) (WaveGAN / WGAN-GP; the paper's code used
(0.9, 0.999)), 5 critic updates per generator update, gradient-penalty weight 10.

Several processes (``torchrun``, env ``RANK``/``WORLD_SIZE``): each rank draws its own batches
(seeded by its rank), gradients are averaged over ranks with ``all_reduce`` after every backward
pass (what DistributedDataParallel does; its reducer is not used because it does not support the
double backward of the gradient penalty), so all ranks keep identical weights; only rank 0
writes the run folder. Precision: bf16 autocast on CUDA when asked for; on CPU always float32.
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
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from cabench.errors import CabenchError
from cabench.folder_config import read_folder_config
from cabench.generators.calciumgan import (
    GanConfig,
    Generator,
    build,
    gradient_penalty,
    n_parameters,
)
from cabench.generators.gan_data import GanData, WindowSampler, load_sets, prepare
from cabench.traceset import atomic_path

FORMAT = "cabench-gan-run"
FORMAT_VERSION = 1
CONFIG, CHECKPOINT, LOG = "config.json", "checkpoint.pt", "log.csv"
LOG_COLUMNS = ("step", "critic_loss", "generator_loss", "gradient_penalty", "wasserstein",
               "val_wasserstein", "seconds", "reconstruction", "nu_ratio")
DEFAULT_EPOCHS = 400


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; ``steps`` is the total number of generator steps."""

    batch_size: int = 128
    steps: int = 0
    n_critic: int = 5
    gp_lambda: float = 10.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    val_fraction: float = 0.1
    scaling: str = "global"
    window_stride: int = 2
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    precision: str = "bf16"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def resolve_device(device: str = "auto", rank: int = 0) -> torch.device:
    from cabench.benchmark.learned.train import resolve_device as _resolve

    dev = _resolve(device)
    if dev.type == "cuda" and dist.is_available() and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return dev


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The torch.Generator of generator step ``step`` on ``rank``."""
    state = np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


# --- run folder ---------------------------------------------------------------------------------
def read_config(run_dir: str | Path) -> dict[str, Any]:
    return read_folder_config(run_dir, FORMAT, FORMAT_VERSION, "GAN run folder", CONFIG)


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CabenchError(f"{run_dir}: no checkpoint ({CHECKPOINT}); the run never saved one")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a format version {FORMAT_VERSION} checkpoint")
        for key in ("generator", "critic", "opt_generator", "opt_critic", "step"):
            if key not in ckpt:
                raise KeyError(key)
    except Exception as e:  # pickle/zip errors have many types
        msg = str(e).splitlines()[0] if str(e) else ""
        raise CabenchError(f"{path}: corrupt or unreadable checkpoint "
                           f"({type(e).__name__}: {msg})") from None
    return ckpt


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_new_run(run_dir: Path, cfg: dict[str, Any]) -> None:
    """Create ``run_dir`` holding only ``config.json``, atomically."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{run_dir.name}.tmp-", dir=run_dir.parent))
    try:
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        with open(tmp / LOG, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(LOG_COLUMNS)
        os.chmod(tmp, 0o755)
        os.replace(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _store_steps(run_dir: Path, cfg: dict[str, Any], steps: int) -> None:
    """Record a new step target given on resume in ``config.json`` (atomically), so that a
    later plain ``--resume`` trains towards it too."""
    if cfg["training"].get("steps") == steps:
        return
    cfg["training"]["steps"] = steps
    with atomic_path(run_dir / CONFIG, overwrite=True) as tmp:
        tmp.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log rows up to ``step`` (rows written after the last checkpoint go)."""
    rows = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= step]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    from cabench import __version__

    return dict(cabench=__version__, torch=torch.__version__, numpy=np.__version__,
                python=platform.python_version())


# --- training -----------------------------------------------------------------------------------
def _average_gradients(module: torch.nn.Module, world: int) -> None:
    if world <= 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()


def load_state(trainer: Any, ckpt: dict[str, Any]) -> None:
    """Restore a trainer's networks (``G``, ``D``), optimisers (``opt_g``, ``opt_c``) and
    step from a checkpoint; CabenchError when they do not fit."""
    t = trainer
    try:
        t.G.load_state_dict(ckpt["generator"])
        t.D.load_state_dict(ckpt["critic"])
        t.opt_g.load_state_dict(ckpt["opt_generator"])
        t.opt_c.load_state_dict(ckpt["opt_critic"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CabenchError(f"checkpoint does not fit the run's config "
                           f"({str(e).splitlines()[0]})") from None
    t.step = int(ckpt["step"])


@dataclass
class Trainer:
    """Generator, critic, optimisers and samplers of one process."""

    gan: GanConfig
    tc: TrainConfig
    device: torch.device
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        self.G, self.D = build(self.gan, self.tc.seed)
        self.G.to(self.device)
        self.D.to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.tc.lr, betas=self.tc.betas)
        self.opt_c = torch.optim.Adam(self.D.parameters(), lr=self.tc.lr, betas=self.tc.betas)
        self.bf16 = self.device.type == "cuda" and self.tc.precision == "bf16"
        self.step = 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def state(self) -> dict[str, Any]:
        return dict(format_version=FORMAT_VERSION, step=self.step, seed=self.tc.seed,
                    world_size=self.world, generator=self.G.state_dict(),
                    critic=self.D.state_dict(), opt_generator=self.opt_g.state_dict(),
                    opt_critic=self.opt_c.state_dict())

    def load(self, ckpt: dict[str, Any]) -> None:
        load_state(self, ckpt)

    def train_step(self, sampler: WindowSampler) -> dict[str, torch.Tensor]:
        """One generator step (after ``n_critic`` critic steps); returns detached losses."""
        tc, dev = self.tc, self.device
        g = step_generator(tc.seed, self.rank, self.step)
        bs, latent = tc.batch_size, self.gan.latent
        self.D.requires_grad_(True)
        sums = dict(critic_loss=0.0, gradient_penalty=0.0, wasserstein=0.0)
        for _ in range(tc.n_critic):
            real = sampler.batch(bs, g)
            z = torch.randn(bs, latent, generator=g).to(dev)
            eps = torch.rand(bs, generator=g).to(dev)
            with torch.no_grad(), self.autocast():
                fake = self.G(z).float()
            with self.autocast():
                w = self.D(real, generator=g).float().mean() - \
                    self.D(fake, generator=g).float().mean()
                gp = gradient_penalty(self.D, real, fake, eps, generator=g)
            loss = -w + tc.gp_lambda * gp
            self.opt_c.zero_grad(set_to_none=True)
            loss.backward()
            _average_gradients(self.D, self.world)
            self.opt_c.step()
            for k, v in (("critic_loss", loss), ("gradient_penalty", gp), ("wasserstein", w)):
                sums[k] = sums[k] + v.detach()
        self.D.requires_grad_(False)
        z = torch.randn(bs, latent, generator=g).to(dev)
        with self.autocast():
            g_loss = -self.D(self.G(z), generator=g).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        _average_gradients(self.G, self.world)
        self.opt_g.step()
        self.D.requires_grad_(True)
        self.step += 1
        out = {k: v / tc.n_critic for k, v in sums.items()}
        out["generator_loss"] = g_loss.detach()
        return out

    @torch.no_grad()
    def val_wasserstein(self, sampler: WindowSampler | None) -> float:
        """Wasserstein estimate on held-out windows (fixed draws; NaN without them)."""
        if sampler is None or sampler.n == 0:
            return float("nan")
        g = step_generator(self.tc.seed, -1 % 2**31, 0)
        bs = min(self.tc.batch_size, max(sampler.n, 1))
        real = sampler.batch(bs, g)
        z = torch.randn(bs, self.gan.latent, generator=g).to(self.device)
        with self.autocast():
            fake = self.G(z)
            w = self.D(real, generator=g).float().mean() - self.D(fake, generator=g).float().mean()
        return float(w)


def resolve_steps(data: GanData, batch_size: int, world: int, steps: int | None,
                  epochs: int | None) -> int:
    """Total generator steps: ``steps``, or ``epochs`` passes over the training windows."""
    if steps is not None and epochs is not None:
        raise CabenchError("give --steps or --epochs, not both")
    if steps is not None:
        return int(steps)
    per_epoch = math.ceil(len(data.starts(data.train)) / (batch_size * world))
    return int(epochs if epochs is not None else DEFAULT_EPOCHS) * max(per_epoch, 1)


def run_steps(trainer: Any, train_s: Any, val_s: Any, tc: Any, run_dir: Path, *,
              writer: bool, fresh: bool, created: bool,
              progress: Callable[[int, int], None] | None = None) -> None:
    """Step ``trainer`` (``train_step(sampler)``, ``val_wasserstein(sampler)``, ``step``) up to
    ``tc.steps``. The ``writer`` process appends to the log every ``tc.log_every`` steps and
    saves the checkpoint atomically every ``tc.checkpoint_every`` (and once for a ``fresh``
    run asked for zero steps); a non-finite loss raises CabenchError. A run folder ``created``
    by this call is removed when training fails before its first checkpoint."""
    saved = False
    t0 = time.perf_counter()
    try:
        while trainer.step < tc.steps:
            losses = trainer.train_step(train_s)
            if progress is not None:
                progress(1, tc.steps)
            s = trainer.step
            if writer and (s % tc.log_every == 0 or s == tc.steps):
                row = {k: float(v) for k, v in losses.items()}
                row.update(step=s, val_wasserstein=trainer.val_wasserstein(val_s),
                           seconds=round(time.perf_counter() - t0, 3))
                if not all(math.isfinite(row[k]) for k in ("critic_loss", "generator_loss")):
                    raise CabenchError(f"training diverged at step {s} (non-finite loss)")
                with open(run_dir / LOG, "a", newline="", encoding="utf-8") as f:
                    csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(
                        {k: ("" if isinstance(v, float) and math.isnan(v) else v)
                         for k, v in row.items()})
            if writer and (s % tc.checkpoint_every == 0 or s == tc.steps):
                _atomic_torch_save(trainer.state(), run_dir / CHECKPOINT)
                saved = True
        if writer and not saved and fresh:  # zero steps asked for
            _atomic_torch_save(trainer.state(), run_dir / CHECKPOINT)
    except BaseException:
        if created and not saved:  # nothing worth keeping: leave no half-made run folder
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def train_gan(
    data_paths: list[str | Path],
    run_dir: str | Path,
    *,
    window: int = 2048,
    steps: int | None = None,
    epochs: int | None = None,
    resume: bool = False,
    device: str = "auto",
    gan_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    command: str = "",
) -> Trainer:
    """Train (or, with ``resume``, continue) a CalciumGAN run in ``run_dir``; returns the
    trainer of this process. In a multi-process run (``torch.distributed`` initialised) every
    rank calls this; only rank 0 writes."""
    run_dir = Path(run_dir)
    say = log or (lambda _m: None)
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    dev = resolve_device(device, rank)
    sets = load_sets(data_paths)
    ckpt = None
    if resume:
        cfg = read_config(run_dir)
        ckpt = load_checkpoint(run_dir)
        gan = GanConfig.from_dict(cfg["model"])
        tc = TrainConfig.from_dict(cfg["training"])
        data = prepare(sets, gan.window, tc.val_fraction, tc.scaling, tc.window_stride)
        if data.fingerprint() != cfg["data"]["fingerprint"]:
            raise CabenchError(f"{run_dir}: the training data differ from those the run started "
                               f"with ({', '.join(cfg['data']['files'])})")
        if steps is not None or epochs is not None:
            tc = replace(tc, steps=resolve_steps(data, tc.batch_size, world, steps, epochs))
        if int(ckpt.get("world_size", 1)) != world:
            say(f"note: the run was trained on {ckpt.get('world_size')} process(es), now "
                f"{world}; batches will differ from an uninterrupted run")
    else:
        if run_dir.exists():
            raise CabenchError(f"{run_dir} exists; pass --resume to continue that run")
        tc = TrainConfig.from_dict({**TrainConfig().to_dict(), **(train_overrides or {})})
        data = prepare(sets, window, tc.val_fraction, tc.scaling, tc.window_stride)
        gan = GanConfig(n_cells=data.n_cells, window=window).replace(**(gan_overrides or {}))
        tc = replace(tc, steps=resolve_steps(data, tc.batch_size, world, steps, epochs))
        cfg = dict(format=FORMAT, format_version=FORMAT_VERSION, model=gan.to_dict(),
                   training=tc.to_dict(), data=data.record(),
                   parameters=dict(generator=None, critic=None), world_size=world,
                   device=str(dev), precision="bf16" if dev.type == "cuda" and
                   tc.precision == "bf16" else "fp32", versions=_versions(), command=command,
                   created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    trainer = Trainer(gan, tc, dev, rank, world)
    if ckpt is not None:
        trainer.load(ckpt)
    created = False
    if not resume and rank == 0:
        cfg["parameters"] = dict(generator=n_parameters(trainer.G),
                                 critic=n_parameters(trainer.D))
        _write_new_run(run_dir, cfg)
        created = True
    if distributed:
        dist.barrier()
    train_s = WindowSampler(data, data.train, dev)
    val_s = WindowSampler(data, data.val, dev) if data.val else None
    if rank == 0:
        if resume:
            _store_steps(run_dir, cfg, tc.steps)
            _truncate_log(run_dir / LOG, trainer.step)
        say(f"{data.n_cells} cells, window {gan.window} frames, {train_s.n} training and "
            f"{val_s.n if val_s else 0} validation windows; steps {trainer.step} -> {tc.steps}"
            f" on {dev}{' (bf16)' if trainer.bf16 else ' (fp32)'}, {world} process(es)")
    run_steps(trainer, train_s, val_s, tc, run_dir, writer=rank == 0, fresh=ckpt is None,
              created=created, progress=progress)
    if distributed:
        dist.barrier()
    return trainer


# --- generation ---------------------------------------------------------------------------------
def load_generator(run_dir: str | Path) -> tuple[Generator, dict[str, Any], int]:
    """The trained generator of a run folder (CPU, eval), its config and its step."""
    cfg = read_config(run_dir)
    ckpt = load_checkpoint(run_dir)
    gan = GanConfig.from_dict(cfg["model"])
    G = Generator(gan)
    try:
        G.load_state_dict(ckpt["generator"])
    except RuntimeError as e:
        raise CabenchError(f"{run_dir}: checkpoint does not fit the run's config "
                           f"({str(e).splitlines()[0]})") from None
    return G.eval(), cfg, int(ckpt["step"])


def sample(G: Generator, cfg: dict[str, Any], n: int, seed: int = 0, batch_size: int = 64,
           device: str = "auto") -> np.ndarray:
    """``n`` generated windows ``(n, cells, window)`` float32 dF/F (scaling inverted)."""
    dev = resolve_device(device)
    G = G.to(dev)
    gen = torch.Generator().manual_seed(int(seed))
    lo = torch.tensor(cfg["data"]["scaling_lo"], dtype=torch.float32)[:, None]
    hi = torch.tensor(cfg["data"]["scaling_hi"], dtype=torch.float32)[:, None]
    out = np.empty((n, G.config.n_cells, G.config.window), np.float32)
    with torch.inference_mode():
        for b in range(0, n, batch_size):
            k = min(batch_size, n - b)
            z = torch.randn(k, G.config.latent, generator=gen).to(dev)
            x = G(z).float().cpu()
            out[b : b + k] = (lo + x * (hi - lo)).numpy()
    return out


def generate(run_dir: str | Path, output: str | Path, samples: int, seed: int = 0,
             batch_size: int = 64, device: str = "auto", overwrite: bool = False,
             command: str | None = None) -> Path:
    """Write ``samples`` generated windows of a run to a trace file (source ``gan``)."""
    from cabench.traceset import TraceWriter

    if samples < 1:
        raise CabenchError(f"--samples must be at least 1, got {samples}")
    G, cfg, step = load_generator(run_dir)
    traces = sample(G, cfg, samples, seed, batch_size, device)
    d = cfg["data"]
    params = dict(run_dir=str(Path(run_dir).resolve()), step=step, seed=int(seed),
                  model=cfg["model"], training=cfg["training"],
                  scaling=dict(lo=d["scaling_lo"], hi=d["scaling_hi"]),
                  training_files=d["files"])
    with TraceWriter(output, n_trials=samples, n_cells=traces.shape[1],
                     n_frames=traces.shape[2], frame_rate=d["frame_rate"],
                     cell_names=d.get("cell_names"), source="gan", seed=int(seed),
                     params=params, command=command, overwrite=overwrite) as w:
        w.write_cells(0, traces)
    return Path(output)
