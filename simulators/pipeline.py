"""The simulation pipeline: parameters -> spikes -> calcium -> noisy dF/F, in blocks of cells.

Randomness is keyed by (stream, block of 256 cells, trial) through ``SeedSequence`` spawn keys
and the noise by (trial, cell), so a given seed gives the same data whatever the memory chunk
size or thread count; population-wide draws (firing rates, amplitudes, shared latents) are made
once for all cells.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cabench.errors import CabenchError
from cabench.simulators import calcium as ca
from cabench.simulators import params as P
from cabench.simulators import spikes as sp
from cabench.traceset import TraceSet, TraceWriter, ragged

SEED_BLOCK = 256  # cells per independent random stream; memory chunks are multiples of it
_STREAMS = dict(rates=1, amps=2, trial=3, block=4, stim=5, noise=6, dg=7)


@dataclass
class Block:
    """Cells ``start:start + traces.shape[1]`` of all trials."""

    start: int
    traces: np.ndarray  # (trials, k, frames) float32 dF/F
    calcium: np.ndarray | None  # noiseless indicator dF/F, same shape
    spikes: list[np.ndarray]  # spike times (s) per (cell, trial), cell-major


class Simulation:
    """A resolved, validated simulation; :meth:`blocks` yields its data block by block."""

    def __init__(self, user: dict[str, Any] | None = None, preset: str | None = None):
        self.params = P.resolve(user, preset)
        p = self.params
        if p["seed"] is None:
            p["seed"] = int(np.random.SeedSequence().entropy % (2**63))
        self.seed = p["seed"]
        self.n_frames = int(round(p["duration"] * p["frame_rate"]))
        self.n_cells, self.n_trials = p["cells"], p["trials"]
        self._population()

    # --- random streams -----------------------------------------------------------------
    def _rng(self, stream: str, *key: int) -> np.random.Generator:
        ss = np.random.SeedSequence(self.seed, spawn_key=(_STREAMS[stream], *key))
        return np.random.default_rng(ss)

    def _population(self) -> None:
        """Draws shared by all cells: rates, cell amplitudes, per-trial latents, DG fit."""
        p, n = self.params, self.n_cells
        if p["rate_sigma"] > 0:
            rates = sp.lognormal_rates(n, p["rate"], p["rate_sigma"], self._rng("rates"),
                                       max_hz=p["max_rate"])
        else:
            rates = np.full(n, min(p["rate"], p["max_rate"]))
        self.rates_hz = rates
        cv = p["cell_amplitude_cv"]
        self.cell_amp = p["amplitude"] * _lognormal_unit_mean(self._rng("amps"), cv, n)
        fr, T = p["frame_rate"], self.n_frames
        self.latent = None
        if p["gain_sd"] > 0:
            self.latent = [
                sp.latent_process(T, 1.0 / fr, p["gain_timescale"], self._rng("trial", t))
                for t in range(self.n_trials)
            ]
        self.dg = None
        self._dg_shared: dict[int, np.ndarray] = {}
        if p["spike_model"] == "dichotomised-gaussian":
            self._fit_dg()

    def _fit_dg(self) -> None:
        p = self.params
        prob = self.rates_hz / p["frame_rate"]
        if p["correlation_matrix"]:
            target = _load_matrix(p["correlation_matrix"], self.n_cells)
            try:
                thr, latent = sp.fit_dichotomised_gaussian(prob, target)
            except ValueError as e:
                raise CabenchError(f"correlation matrix: {e}") from None
            self.dg = ("full", thr, latent)
        else:
            try:
                loadings = sp.fit_dg_one_factor(prob, p["correlation"])
            except ValueError as e:
                raise CabenchError(f"correlation {p['correlation']}: {e}") from None
            self.dg = ("one-factor", loadings, None)

    # --- blocks ---------------------------------------------------------------------------
    def block_size(self, chunk_cells: int | None) -> int:
        """Cells per memory chunk (a multiple of SEED_BLOCK; all cells for a full DG matrix)."""
        if self.dg is not None and self.dg[0] == "full":
            return self.n_cells
        if chunk_cells is None:  # ~256 MB of float32 per chunk
            chunk_cells = max(1, (64 * 2**20) // (self.n_trials * self.n_frames))
        return max(SEED_BLOCK, (chunk_cells // SEED_BLOCK) * SEED_BLOCK)

    def blocks(self, chunk_cells: int | None = None, keep_calcium: bool = False) -> Iterator[Block]:
        """Blocks of cells in order; the traces buffer is reused: consume each before the next."""
        size = self.block_size(chunk_cells)
        buf = np.empty((self.n_trials, min(size, self.n_cells), self.n_frames), np.float32)
        for start in range(0, self.n_cells, size):
            stop = min(start + size, self.n_cells)
            yield self._block(start, stop, keep_calcium, out=buf[:, : stop - start])

    def _seed_blocks(self, start: int, stop: int) -> list[tuple[int, int]]:
        if self.dg is not None and self.dg[0] == "full":
            return [(start, stop)]
        return [(b, min(b + SEED_BLOCK, stop)) for b in range(start, stop, SEED_BLOCK)]

    def _spikes(self, b0: int, b1: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
        """Spike trains (s) of cells b0:b1 (one seed block) in one trial, cell-major ragged."""
        p = self.params
        fr, T = p["frame_rate"], self.n_frames
        rng = self._rng("block", b0 // SEED_BLOCK, trial)
        rates = self.rates_hz[b0:b1]
        if self.dg is not None:
            prob = rates / fr
            if self.dg[0] == "full":
                return sp.dichotomised_gaussian_trains(prob, self.dg[2], self.dg[1], T, fr, rng)
            if trial not in self._dg_shared:  # drawn once per trial, shared by all blocks
                self._dg_shared = {trial: self._rng("dg", trial).standard_normal(T)}
            return sp.dg_one_factor(prob, self.dg[1][b0:b1], T, fr, rng, self._dg_shared[trial])
        if self.latent is not None or p["stimulus_depth"] > 0:
            r = np.repeat(rates[:, None], T, axis=1)
            if p["stimulus_depth"] > 0:
                s = p["stimulus_depth"]
                u = ca.ou_process(b1 - b0, T, fr, p["stimulus_timescale"], 1.0,
                                  self._rng("stim", b0 // SEED_BLOCK))
                r *= np.exp(s * u - 0.5 * s * s)
            if self.latent is not None:
                r = sp.gain_modulated_rates(r, self.latent[trial], p["gain_sd"])
            return sp.inhomogeneous_trains(r, 1.0 / fr, rng, p["refractory"])
        if p["burst_fraction"] > 0:
            return sp.burst_trains(rates, T / fr, rng, p["burst_fraction"], p["burst_size"],
                                   p["burst_isi"], p["refractory"])
        return sp.poisson_trains(rates, T / fr, rng, p["refractory"])

    def _block(self, start: int, stop: int, keep_calcium: bool,
               out: np.ndarray | None = None) -> Block:
        """Simulate cells start:stop of all trials into ``out`` (trials, k, frames) if given."""
        p = self.params
        fr, T, nt, k = p["frame_rate"], self.n_frames, self.n_trials, stop - start
        traces = np.empty((nt, k, T), np.float32) if out is None else out
        calcium = np.empty((nt, k, T), np.float32) if keep_calcium else None
        f = p["shot_fraction"] if p["noise_model"] == "poisson-gaussian" else 0.0
        amp = self.cell_amp[start:stop].astype(np.float32)
        per_trial = []  # [trial] -> list of spike-time arrays per cell
        for t in range(nt):
            parts, weights, extra = [], [], None
            for b0, b1 in self._seed_blocks(start, stop):
                times, offsets = self._spikes(b0, b1, t)
                parts.extend(np.split(times, offsets[1:-1]))
                rng = self._rng("block", b0 // SEED_BLOCK, nt + t)  # amplitudes, drift, neuropil
                weights.append(_lognormal_unit_mean(rng, p["amplitude_cv"], times.size))
                if p["drift_sd"] > 0 or p["neuropil"] > 0:
                    if extra is None:
                        extra = np.zeros((k, T), np.float32)
                    extra[b0 - start : b1 - start] = self._baseline(b1 - b0, t, rng)
            per_trial.append(parts)
            times, offsets = ragged(parts)
            rows = traces[t]
            keys = ca.noise_keys(self._noise_seed(), np.full(k, t), np.arange(start, stop),
                                 self.n_cells)
            ca.render_calcium(rows, times, np.concatenate(weights), offsets, fr, p["decay"],
                              p["rise"], p["subframe"], amp, p["hill"], p["saturation"])
            if keep_calcium:
                calcium[t] = rows
            if extra is not None:
                rows += extra
            if p["sigma"] is not None:
                sigma = np.full(k, p["sigma"])
            else:
                sigma = ca.sigma_for_nu(rows, keys, p["noise"], fr, f, ca.NU_SAMPLE)
                if (sigma < 0).any():
                    warnings.warn(
                        f"{int((sigma < 0).sum())} cell(s) change more per frame than noise "
                        f"level {p['noise']} allows; they get the white-noise SD for that level "
                        "and a higher nu", stacklevel=2)
                    sigma[sigma < 0] = p["noise"] * np.sqrt(fr) / 100 / 0.9538725524732674
            ca.add_noise(rows, keys, sigma.astype(np.float32), np.float32(f))
        spikes = [per_trial[t][c] for c in range(k) for t in range(nt)]
        return Block(start, traces, calcium, spikes)

    def _baseline(self, k: int, trial: int, rng: np.random.Generator) -> np.ndarray:
        """Drift plus neuropil (dF/F) for k cells of one seed block; neuropil half shared."""
        p = self.params
        fr, T = p["frame_rate"], self.n_frames
        out = np.zeros((k, T), np.float32)
        if p["drift_sd"] > 0:
            out += ca.ou_process(k, T, fr, p["drift_timescale"], p["drift_sd"], rng)
        if p["neuropil"] > 0:
            args = (T, fr, p["neuropil_timescale"], p["neuropil_sd"])
            shared = ca.ou_process(1, *args, self._rng("trial", self.n_trials + trial))
            local = ca.ou_process(k, *args, rng)
            out += np.float32(p["neuropil"] * np.sqrt(0.5)) * (shared + local)
        return out

    def _noise_seed(self) -> int:
        return int(np.random.SeedSequence(self.seed, spawn_key=(_STREAMS["noise"],))
                   .generate_state(1, np.uint64)[0])

    # --- outputs --------------------------------------------------------------------------
    def run(self, keep_calcium: bool = True) -> TraceSet:
        """The whole simulation in memory."""
        shape = (self.n_trials, self.n_cells, self.n_frames)
        traces = np.empty(shape, np.float32)
        calcium = np.empty(shape, np.float32) if keep_calcium else None
        spikes = []
        size = self.block_size(None)
        for start in range(0, self.n_cells, size):
            stop = min(start + size, self.n_cells)
            b = self._block(start, stop, keep_calcium, out=traces[:, start:stop])
            if keep_calcium:
                calcium[:, start:stop] = b.calcium
            spikes.extend(b.spikes)
        times, offsets = ragged(spikes)
        return TraceSet(traces, self.params["frame_rate"], times, offsets, calcium,
                        source="simulated", indicator=self.params["indicator"], seed=self.seed,
                        params=self.params)

    def write(self, path: str | Path, overwrite: bool = False, keep_calcium: bool = False,
              chunk_cells: int | None = None,
              progress: Callable[[int], None] | None = None, command: str | None = None) -> Path:
        """Stream the simulation to a trace file with memory bounded by one chunk of cells."""
        with TraceWriter(path, n_trials=self.n_trials, n_cells=self.n_cells,
                         n_frames=self.n_frames, frame_rate=self.params["frame_rate"],
                         with_spikes=True, with_calcium=keep_calcium, source="simulated",
                         indicator=self.params["indicator"], seed=self.seed,
                         params=self.params, command=command, overwrite=overwrite) as w:
            for b in self.blocks(chunk_cells, keep_calcium):
                w.write_cells(b.start, b.traces, b.calcium, ragged(b.spikes))
                if progress is not None:
                    progress(b.traces.shape[1])
        return Path(path)


def simulate(params: dict[str, Any] | None = None, preset: str | None = None,
             **overrides: Any) -> TraceSet:
    """Simulate in memory: ``simulate(preset="GCaMP6s", cells=50, noise=2, seed=1)``."""
    return Simulation({**(params or {}), **overrides}, preset).run()


def _lognormal_unit_mean(rng: np.random.Generator, cv: float, n: int) -> np.ndarray:
    """Lognormal factors with mean 1 and coefficient of variation ``cv``."""
    if cv <= 0:
        return np.ones(n)
    s = np.sqrt(np.log1p(cv * cv))
    return np.exp(rng.normal(-0.5 * s * s, s, n))


def _load_matrix(path: str, n: int) -> np.ndarray:
    path_ = Path(path)
    try:
        m = np.load(path_) if path_.suffix == ".npy" else np.loadtxt(path_, delimiter=",")
    except (OSError, ValueError) as e:
        raise CabenchError(f"cannot read correlation matrix {path}: {e}") from None
    if m.shape != (n, n):
        raise CabenchError(f"correlation matrix {path} has shape {m.shape}, expected ({n}, {n})")
    return m
