"""Training the spike-conditioned CalciumGAN into a run folder, resuming it, generating from it.

The run folder is that of :mod:`cabench.generators.gan_train` (``config.json``,
``checkpoint.pt``, ``log.csv``, same format and checkpoint layout) with ``"kind":
"conditional"`` in the config; the config also records the architecture
(:class:`~cabench.generators.conditional.ConditionalConfig`), the training settings
(:class:`ConditionalTrainConfig`), the data (sources, frame rate, trace scale, median nu, the
training and held-out datasets with their frame and spike counts, a SHA-256 of the training
data), the seed, versions and the command line. An unconditional run has no ``kind``.

Each generator step: ``n_critic`` critic updates, each on a fresh batch of real (spikes, trace)
windows; the generated trace of a window comes from the same spikes, indicator and nu; WGAN-GP
with the penalty on traces interpolated between real and generated, the spikes fixed. Then one
generator update on a fresh batch: the critic's score plus, with ``recon_weight`` > 0, that
weight times a reconstruction term: the Huber loss (threshold 3) of the real trace around the
generated signal (the trace without its white noise), in units of the noise SD that the
window's nu implies. It pulls the signal towards the mean trace given the spikes (the
spike-triggered average is such a mean), which a critic that sees whole windows constrains only
loosely; the term is logged (column ``reconstruction``) whenever the model has a noise path.
With ``nu_weight`` > 0 it also adds that weight times the mean squared log ratio of each
generated window's noise level to that of the real window with the same spikes (nu measured as
in :func:`cabench.noise_level.noise_level_nu`: the median absolute frame-to-frame difference).
With the reconstruction term alone the noise gain drifted to about 1.4 x the real nu; this term
holds it. The geometric mean of the ratio is logged (column ``nu_ratio``) whenever the model
has a noise path. The generated trace (and signal) of a window from a recording resampled up
from a lower native rate is band-limited to that recording's bandwidth before any of this (see
:mod:`~cabench.generators.conditional_data`), so the networks learn full-band traces. Adam lr
1e-4, betas (0.5, 0.9), penalty weight 10. A window's indicator is replaced by "unknown" with
probability ``unknown_prob`` (0.1), so that generation for an unnamed indicator is trained too.

Randomness: initial weights from ``seed``; everything drawn in generator step ``s`` from a
torch.Generator seeded by ``(seed, 0, s)``: a resumed run repeats an uninterrupted one bit for
bit. Generation draws the noise of trace ``i`` from a generator seeded by ``(seed, i)``, so the
output does not depend on the batch size. One process, float32.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cabench.errors import CabenchError
from cabench.generators.calciumgan import gradient_penalty, n_parameters
from cabench.generators.conditional import (
    ConditionalConfig,
    ConditionalGenerator,
    band_limit_windows,
    build_conditional,
    noise_sd,
)
from cabench.generators.conditional_data import (
    DEFAULT_FRAME_RATE,
    ConditionalData,
    PairSampler,
    load_recordings,
    prepare_conditional,
)
from cabench.generators.gan_train import (
    FORMAT,
    FORMAT_VERSION,
    LOG,
    _store_steps,
    _truncate_log,
    _versions,
    _write_new_run,
    load_checkpoint,
    load_state,
    read_config,
    resolve_device,
    run_steps,
    step_generator,
)
from cabench.indicators import UNKNOWN, indicator_index
from cabench.traceset import TraceSet

KIND = "conditional"
KINDS = ("conditional", "unconditional")
DEFAULT_STEPS = 20000
#: frame rates within this fraction of the model's are accepted by :func:`generate_traces`
RATE_TOLERANCE = 0.05


@dataclass(frozen=True)
class ConditionalTrainConfig:
    """Training settings; ``steps`` is the total number of generator steps, ``window`` and
    ``frame_rate`` (Hz) the training windows, ``val_datasets`` the requested held-out
    datasets (names or globs; None: the default choice)."""

    batch_size: int = 32
    steps: int = 0
    window: int = 512
    frame_rate: float = DEFAULT_FRAME_RATE
    val_datasets: tuple[str, ...] | None = None
    n_critic: int = 5
    gp_lambda: float = 10.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    unknown_prob: float = 0.1
    recon_weight: float = 0.0
    nu_weight: float = 0.0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.val_datasets is not None:
            object.__setattr__(self, "val_datasets", tuple(str(v) for v in self.val_datasets))
        for name in ("batch_size", "window", "n_critic", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise CabenchError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.window < 2:
            raise CabenchError(f"window must be at least 2 frames, got {self.window}")
        if self.steps < 0:
            raise CabenchError(f"steps must not be negative, got {self.steps}")
        if not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise CabenchError(f"frame rate must be a positive number of Hz, got "
                               f"{self.frame_rate}")
        if not 0 <= self.unknown_prob <= 1:
            raise CabenchError(f"unknown_prob must be in [0, 1], got {self.unknown_prob}")
        for name in ("recon_weight", "nu_weight"):
            w = getattr(self, name)
            if not (math.isfinite(w) and w >= 0):
                raise CabenchError(f"{name} must be a finite number >= 0, got {w}")
        if self.lr <= 0 or self.gp_lambda < 0:
            raise CabenchError("lr must be positive and gp_lambda not negative")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["val_datasets"] = None if self.val_datasets is None else list(self.val_datasets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConditionalTrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CabenchError(f"unknown conditional training keys {unknown}; "
                               f"valid: {sorted(known)}")
        return cls(**d)


# --- run folder ---------------------------------------------------------------------------------
def run_kind(run_dir: str | Path) -> str:
    """``"conditional"`` or ``"unconditional"`` (a run without a ``kind`` is an unconditional
    one of :mod:`~cabench.generators.gan_train`); CabenchError if ``run_dir`` is no run."""
    kind = read_config(run_dir).get("kind", "unconditional")
    if kind not in KINDS:
        raise CabenchError(f"{run_dir}: unknown GAN run kind {kind!r} (known: "
                           f"{', '.join(KINDS)})")
    return kind


def _read_conditional(run_dir: str | Path) -> dict[str, Any]:
    cfg = read_config(run_dir)
    if cfg.get("kind", "unconditional") != KIND:
        raise CabenchError(f"{run_dir}: an unconditional GAN run, not a conditional one")
    return cfg


def load_conditional_generator(run_dir: str | Path
                               ) -> tuple[ConditionalGenerator, dict[str, Any], int]:
    """The trained generator of a conditional run (CPU, eval), its config and its step."""
    cfg = _read_conditional(run_dir)
    ckpt = load_checkpoint(run_dir)
    G = ConditionalGenerator(ConditionalConfig.from_dict(cfg["model"]))
    try:
        G.load_state_dict(ckpt["generator"])
    except RuntimeError as e:
        raise CabenchError(f"{run_dir}: checkpoint does not fit the run's config "
                           f"({str(e).splitlines()[0]})") from None
    return G.eval(), cfg, int(ckpt["step"])


# --- training -----------------------------------------------------------------------------------
@dataclass
class ConditionalTrainer:
    """Generator, critic and optimisers of a conditional run."""

    model: ConditionalConfig
    tc: ConditionalTrainConfig
    device: torch.device

    def __post_init__(self) -> None:
        self.G, self.D = build_conditional(self.model, self.tc.seed)
        self.G.to(self.device)
        self.D.to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.tc.lr, betas=self.tc.betas)
        self.opt_c = torch.optim.Adam(self.D.parameters(), lr=self.tc.lr, betas=self.tc.betas)
        self.unknown = self.model.indicators.index(UNKNOWN)
        self.step = 0
        for name in ("recon_weight", "nu_weight"):
            if getattr(self.tc, name) and not self.model.nu_gain:
                raise CabenchError(f"{name} needs a model with a noise path (nu_gain > 0)")

    def state(self) -> dict[str, Any]:
        return dict(format_version=FORMAT_VERSION, kind=KIND, step=self.step,
                    seed=self.tc.seed, world_size=1, generator=self.G.state_dict(),
                    critic=self.D.state_dict(), opt_generator=self.opt_g.state_dict(),
                    opt_critic=self.opt_c.state_dict())

    def load(self, ckpt: dict[str, Any]) -> None:
        load_state(self, ckpt)

    def _noise(self, bs: int, frames: int, g: torch.Generator) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
        m = self.model
        noise = torch.randn(bs, m.noise_channels, frames, generator=g).to(self.device)
        return noise, torch.randn(bs, m.latent, generator=g).to(self.device)

    def _fake(self, b: dict[str, torch.Tensor], g: torch.Generator, with_signal: bool = False
              ) -> Any:
        """The generated trace of each window (and its signal), band-limited to the
        window's bandwidth (``b["keep"]``; see :mod:`~cabench.generators.conditional_data`)."""
        noise, latent = self._noise(b["spikes"].shape[0], b["spikes"].shape[1], g)
        out = self.G(b["spikes"], b["indicator"], b["nu"], noise, latent, with_signal)
        if "keep" not in b:
            return out
        if with_signal:
            return tuple(band_limit_windows(x, b["keep"]) for x in out)
        return band_limit_windows(out, b["keep"])

    def _reconstruction(self, signal: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean Huber loss (threshold 3) of the real trace's deviation from the generated
        signal, in units of the noise SD that the window's nu implies."""
        z = (b["trace"] - signal) / noise_sd(b["nu"], self.model.nu_gain)
        return torch.nn.functional.huber_loss(z, torch.zeros_like(z), delta=3.0)

    @staticmethod
    def _nu_log_ratio(fake: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per window ``(batch,)``: log of the generated window's noise level over the real
        window's (median absolute frame-to-frame difference; the scale cancels)."""
        def level(x: torch.Tensor) -> torch.Tensor:
            return x.diff(dim=-1).abs().median(dim=-1).values.clamp_min(1e-8).log()

        return level(fake) - level(b["trace"])

    def _score(self, trace: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.D(trace, b["spikes"], b["indicator"], b["nu"])

    def train_step(self, sampler: PairSampler) -> dict[str, torch.Tensor]:
        """One generator step (after ``n_critic`` critic updates); returns detached losses."""
        tc = self.tc
        g = step_generator(tc.seed, 0, self.step)
        bs = tc.batch_size
        sums = dict(critic_loss=0.0, gradient_penalty=0.0, wasserstein=0.0)
        self.D.requires_grad_(True)
        for _ in range(tc.n_critic):
            b = sampler.batch(bs, g, tc.unknown_prob, self.unknown)
            with torch.no_grad():
                fake = self._fake(b, g)
            eps = torch.rand(bs, generator=g).to(self.device)
            w = self._score(b["trace"], b).mean() - self._score(fake, b).mean()
            gp = gradient_penalty(self.D, b["trace"], fake, eps, spikes=b["spikes"],
                                  indicator=b["indicator"], nu=b["nu"])
            loss = -w + tc.gp_lambda * gp
            self.opt_c.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_c.step()
            for k, v in (("critic_loss", loss), ("gradient_penalty", gp), ("wasserstein", w)):
                sums[k] = sums[k] + v.detach()
        self.D.requires_grad_(False)
        b = sampler.batch(bs, g, tc.unknown_prob, self.unknown)
        fake, signal = self._fake(b, g, with_signal=True)
        g_loss = -self._score(fake, b).mean()
        loss = g_loss
        recon = ratio = None
        if self.model.nu_gain:
            recon, ratio = self._reconstruction(signal, b), self._nu_log_ratio(fake, b)
            if tc.recon_weight:
                loss = loss + tc.recon_weight * recon
            if tc.nu_weight:
                loss = loss + tc.nu_weight * ratio.square().mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        self.step += 1
        out = {k: v / tc.n_critic for k, v in sums.items()}
        out["generator_loss"] = g_loss.detach()
        if recon is not None:
            out["reconstruction"] = recon.detach()
            out["nu_ratio"] = ratio.detach().mean().exp()
        return out

    @torch.no_grad()
    def val_wasserstein(self, sampler: PairSampler | None) -> float:
        """Wasserstein estimate (mean critic score of real minus generated) on held-out
        windows, the same draws every time; NaN without validation data."""
        if sampler is None or sampler.n == 0:
            return float("nan")
        g = step_generator(self.tc.seed, 2**31 - 1, 0)
        b = sampler.batch(self.tc.batch_size, g)
        return float(self._score(b["trace"], b).mean() - self._score(self._fake(b, g), b).mean())


def resolve_steps(data: ConditionalData, batch_size: int, steps: int | None,
                  epochs: int | None) -> int:
    """``steps``, or ``epochs`` passes over the training frames (``train_frames / (window x
    batch)`` steps each), or :data:`DEFAULT_STEPS`."""
    if steps is not None and epochs is not None:
        raise CabenchError("give --steps or --epochs, not both")
    if steps is not None:
        return int(steps)
    if epochs is None:
        return DEFAULT_STEPS
    frames = sum(len(s.trace) for s in data.train)
    return int(epochs) * max(math.ceil(frames / (data.window * batch_size)), 1)


def train_conditional(
    sources: list[str | Path],
    run_dir: str | Path,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    device: str = "auto",
    model_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    command: str = "",
) -> ConditionalTrainer:
    """Train (or, with ``resume``, continue) a conditional run in ``run_dir`` on the
    ground truth under ``sources`` (dataset folders; see
    :mod:`~cabench.generators.conditional_data`); returns the trainer.

    ``init_from``: a new run that starts from the weights of that run's checkpoint (fine
    tuning, e.g. with other training settings or data); it takes that run's architecture,
    frame rate and trace scale, starts fresh optimisers at step 0 and records where it began."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CabenchError("the conditional GAN trains in one process (no torchrun)")
    run_dir = Path(run_dir)
    say = log or (lambda _m: None)
    dev = resolve_device(device)
    ckpt = None
    source = _init_source(init_from, resume, model_overrides, train_overrides)
    if source is not None:
        model_overrides = source["config"]["model"]
        train_overrides = {**(train_overrides or {}),
                           "frame_rate": source["config"]["training"]["frame_rate"]}
    if resume:
        cfg = _read_conditional(run_dir)
        ckpt = load_checkpoint(run_dir)
        model = ConditionalConfig.from_dict(cfg["model"])
        tc = ConditionalTrainConfig.from_dict(cfg["training"])
    else:
        if run_dir.exists():
            raise CabenchError(f"{run_dir} exists; pass --resume to continue that run")
        tc = ConditionalTrainConfig.from_dict({**ConditionalTrainConfig().to_dict(),
                                               **(train_overrides or {})})
        model = ConditionalConfig().replace(**(model_overrides or {}))
    data = prepare_conditional(load_recordings(sources), tc.window, tc.frame_rate,
                               None if tc.val_datasets is None else list(tc.val_datasets),
                               model.indicators, [str(s) for s in sources])
    if resume:
        if data.fingerprint() != cfg["data"]["fingerprint"]:
            raise CabenchError(f"{run_dir}: the training data differ from those the run started "
                               f"with ({', '.join(cfg['data']['sources'])})")
        if steps is not None or epochs is not None:
            tc = replace(tc, steps=resolve_steps(data, tc.batch_size, steps, epochs))
    else:
        tc = replace(tc, steps=resolve_steps(data, tc.batch_size, steps, epochs))
        if source is not None:
            data = replace(data, trace_scale=float(source["config"]["data"]["trace_scale"]))
        if "nu_gain" not in (model_overrides or {}):
            model = model.replace(nu_gain=math.sqrt(data.frame_rate) / (95.4 * data.trace_scale))
        cfg = dict(format=FORMAT, format_version=FORMAT_VERSION, kind=KIND,
                   model=model.to_dict(), training=tc.to_dict(), data=data.record(),
                   seed=tc.seed, parameters=None, receptive_field_frames=dict(
                       generator=model.receptive_field, critic=model.critic_field),
                   device=str(dev), precision="fp32", versions=_versions(), command=command,
                   created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if source is not None:
            cfg["init_from"] = dict(run=str(init_from), step=source["step"],
                                    data_fingerprint=source["config"]["data"]["fingerprint"])
    if model.receptive_field - model.lookahead > tc.window or model.critic_field > tc.window:
        say(f"note: receptive fields ({model.receptive_field} generator, {model.critic_field} "
            f"critic frames) exceed the {tc.window}-frame window")
    trainer = ConditionalTrainer(model, tc, dev)
    created = False
    if source is not None:
        trainer.G.load_state_dict(source["generator"])
        trainer.D.load_state_dict(source["critic"])
    if ckpt is not None:
        trainer.load(ckpt)
        _store_steps(run_dir, cfg, tc.steps)
        _truncate_log(run_dir / LOG, trainer.step)
    else:
        cfg["parameters"] = dict(generator=n_parameters(trainer.G),
                                 critic=n_parameters(trainer.D))
        _write_new_run(run_dir, cfg)
        created = True
    train_s = PairSampler(data, data.train, dev)
    val_s = PairSampler(data, data.val, dev) if data.val else None
    say(f"{len(data.datasets(data.train))} training datasets ({train_s.n} windows), "
        f"{len(data.datasets(data.val))} held out ({val_s.n if val_s else 0} windows) at "
        f"{data.frame_rate:g} Hz, window {tc.window}; steps {trainer.step} -> {tc.steps} on "
        f"{dev}")
    run_steps(trainer, train_s, val_s, tc, run_dir, writer=True, fresh=ckpt is None,
              created=created, progress=progress)
    return trainer


def _init_source(init_from: str | Path | None, resume: bool,
                 model_overrides: dict[str, Any] | None,
                 train_overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """The config, step and weights of the run a new run starts from (None: none)."""
    if init_from is None:
        return None
    if resume:
        raise CabenchError("--init-from starts a new run; it does not go with --resume")
    if any(v is not None for v in (model_overrides or {}).values()):
        raise CabenchError("--init-from takes the architecture of the run it starts from; "
                           "leave out the architecture options")
    rate = (train_overrides or {}).get("frame_rate")
    cfg = _read_conditional(init_from)
    if rate is not None and float(rate) != float(cfg["training"]["frame_rate"]):
        raise CabenchError(f"--init-from {init_from}: that run works at "
                           f"{cfg['training']['frame_rate']:g} Hz, not {rate:g} Hz")
    ckpt = load_checkpoint(init_from)
    return dict(config=cfg, step=int(ckpt["step"]), generator=ckpt["generator"],
                critic=ckpt["critic"])


# --- generation ---------------------------------------------------------------------------------
def _check_spikes(spikes: TraceSet, model_rate: float) -> None:
    if not isinstance(spikes, TraceSet):
        raise CabenchError(f"spikes must be a TraceSet, got {type(spikes).__name__}")
    if not spikes.has_spikes:
        raise CabenchError("the spike file has no ground-truth spikes (spike_times); give a "
                           "trace file with spikes, e.g. from cabench simulate")
    if spikes.n_frames == 0 or spikes.n_trials == 0 or spikes.n_cells == 0:
        raise CabenchError(f"the spike file has no frames to generate: shape "
                           f"{spikes.traces.shape} (trials, cells, frames)")
    n_nan = int(np.isnan(spikes.spike_times).sum())
    if n_nan:
        raise CabenchError(f"the spike file has {n_nan} NaN spike time(s)")
    if not np.isfinite(spikes.times()).all():
        raise CabenchError("the spike file has NaN frame times")
    if abs(spikes.frame_rate / model_rate - 1) > RATE_TOLERANCE:
        raise CabenchError(f"the spikes are at {spikes.frame_rate:g} Hz but the model was "
                           f"trained at {model_rate:g} Hz; resample them first (e.g. "
                           f"cabench.conditions.resample, or simulate with --frame-rate "
                           f"{model_rate:g})")


def trace_generator(seed: int, index: int) -> torch.Generator:
    """The torch.Generator of the noise of trace ``index`` (trial-major order)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def generate_traces(run_dir: str | Path, spikes: TraceSet, seed: int = 0, batch_size: int = 64,
                    device: str = "auto", indicator: str | None = None,
                    noise_level: float | None = None,
                    bandwidth_hz: float | None = None) -> TraceSet:
    """dF/F traces for every (trial, cell) of ``spikes`` from a conditional run.

    The spike counts per frame of ``spikes`` (its frame times and rate, which must be within
    5 % of the model's) drive the generator; the result has the same shape, frame rate, frame
    times, cell names and spikes (as ground truth), source ``"gan"``, float32 dF/F as a
    fraction. ``indicator``: a name in the model's vocabulary (default: ``spikes.indicator``
    if the model knows it, else ``"unknown"``); ``noise_level``: nu in % Hz^-1/2 (default: the
    median nu of the training recordings). ``bandwidth_hz``: remove every frequency above it
    (:func:`cabench.conditions.band_limit`), for traces like a recording resampled up from a
    rate of twice that; nu is then that of the recording at its native rate (white noise of
    nu at any rate is the same per square root of a hertz). The noise of trace ``i``
    (trial-major) comes from ``(seed, i)``, so the batch size does not change the result
    (beyond float rounding). ``params`` record the run, step, seed, indicator, noise level,
    bandwidth and trace scale.
    """
    cfg = _read_conditional(run_dir)
    d = cfg["data"]
    _check_spikes(spikes, float(d["frame_rate"]))
    if batch_size < 1:
        raise CabenchError(f"batch size must be at least 1, got {batch_size}")
    G, cfg, step = load_conditional_generator(run_dir)
    vocab = G.config.indicators
    if indicator is not None:
        ind = indicator_index(indicator, vocab)
        if ind is None:
            raise CabenchError(f"indicator {indicator!r} is unknown to the model; known: "
                               f"{', '.join(vocab)}")
    else:
        ind = indicator_index(spikes.indicator, vocab)
        if ind is None:
            ind = vocab.index(UNKNOWN)
    nu = float(d["nu_median"]) if noise_level is None else float(noise_level)
    if not (math.isfinite(nu) and nu > 0):
        raise CabenchError(f"noise level nu must be a positive number (% Hz^-1/2), got {nu}")
    if bandwidth_hz is not None and not (math.isfinite(bandwidth_hz) and bandwidth_hz > 0):
        raise CabenchError(f"bandwidth must be a positive number of Hz, got {bandwidth_hz}")
    counts = spikes.binned_spikes()
    if counts.sum() == 0:
        raise CabenchError("the spike trains are empty (no spike inside the frames): there is "
                           "nothing to condition on; give spikes, e.g. from cabench simulate")
    t, c, n = counts.shape
    flat = counts.reshape(t * c, n)
    dev = resolve_device(device)
    G = G.to(dev)
    m = G.config
    scale = float(d["trace_scale"])
    out = np.empty((t * c, n), np.float32)
    with torch.inference_mode():
        for a in range(0, t * c, batch_size):
            k = min(batch_size, t * c - a)
            gens = [trace_generator(seed, a + i) for i in range(k)]
            latent = torch.stack([torch.randn(m.latent, generator=g) for g in gens])
            noise = torch.stack([torch.randn(m.noise_channels, n, generator=g) for g in gens])
            x = G(torch.from_numpy(flat[a : a + k]).to(dev),
                  torch.full((k,), ind, dtype=torch.long, device=dev),
                  torch.full((k,), nu, dtype=torch.float32, device=dev),
                  noise.to(dev), latent.to(dev))
            out[a : a + k] = (x.float().cpu().numpy() * scale).astype(np.float32)
    if bandwidth_hz is not None:
        from cabench.conditions import band_limit

        out = band_limit(out, spikes.frame_rate, bandwidth_hz)
    params = dict(generator="conditional-gan", run_dir=str(Path(run_dir).resolve()), step=step,
                  seed=int(seed), indicator=vocab[ind], noise_level_nu=nu,
                  bandwidth_hz=None if bandwidth_hz is None else float(bandwidth_hz),
                  trace_scale=scale, model_frame_rate=float(d["frame_rate"]),
                  spikes_source=spikes.source, spikes_params=spikes.params)
    return TraceSet(traces=out.reshape(t, c, n), frame_rate=spikes.frame_rate,
                    spike_times=spikes.spike_times.copy(),
                    spike_offsets=spikes.spike_offsets.copy(),
                    frame_times=None if spikes.frame_times is None else spikes.frame_times.copy(),
                    cell_names=None if spikes.cell_names is None else list(spikes.cell_names),
                    source="gan", indicator=vocab[ind] if vocab[ind] != UNKNOWN else
                    spikes.indicator, seed=int(seed), params=params)
