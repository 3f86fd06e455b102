"""Compiled inner loop of the peeling method (numba); see :mod:`.peeling` for the algorithm."""

from __future__ import annotations

import numba as nb
import numpy as np

_NONE = -np.inf


@nb.njit(cache=True)
def _best_at(k, num, cut_norm2, n, length, sd, threshold):
    """Best (gain, template) at position k: gain 2<r,T> - |T|^2 over significant templates."""
    m = min(length, n - k)
    best, best_d = _NONE, -1
    for d in range(num.shape[0]):
        nrm2 = cut_norm2[d, m]
        if nrm2 <= 0.0:
            continue
        x = num[d, k]
        if x < threshold * sd * np.sqrt(nrm2):
            continue
        gain = 2.0 * x - nrm2
        if gain > 0.0 and gain > best:
            best, best_d = gain, d
    return best, best_d


@nb.njit(cache=True)
def peel(r, num, tmpl, cut_norm2, cross, sd, threshold, max_spikes, block):
    """Peel spikes; returns (frame index, template index) arrays of the spikes, in peel order.

    ``num[d, k] = <r[k:k+L], tmpl[d]>`` (cut at the end) is updated in place; ``r`` is not
    needed after that and is left unchanged.
    """
    q, length = tmpl.shape
    n = num.shape[1]
    fbest = np.empty(n)
    fwhich = np.empty(n, np.int64)
    for k in range(n):
        fbest[k], fwhich[k] = _best_at(k, num, cut_norm2, n, length, sd, threshold)
    n_blocks = (n + block - 1) // block
    bmax = np.full(n_blocks, _NONE)
    for k in range(n):
        b = k // block
        if fbest[k] > bmax[b]:
            bmax[b] = fbest[k]
    frames = np.empty(max_spikes, np.int64)
    which = np.empty(max_spikes, np.int64)
    count = 0
    while count < max_spikes:
        b = np.argmax(bmax)
        if not bmax[b] > 0.0:
            break
        lo, hi = b * block, min(n, (b + 1) * block)
        k0 = lo
        for k in range(lo, hi):
            if fbest[k] > fbest[k0]:
                k0 = k
        e = fwhich[k0]
        frames[count], which[count] = k0, e
        count += 1
        # update <r, T_d> at positions whose window overlaps the subtracted template
        a, z = max(0, k0 - length + 1), min(n, k0 + length)
        for k in range(a, z):
            lag = k - k0
            if k + length <= n:
                for d in range(q):
                    num[d, k] -= cross[d, e, lag + length - 1]
            else:  # window cut by the end of the trace
                for d in range(q):
                    acc = 0.0
                    for j in range(n - k):
                        i = lag + j
                        if 0 <= i < length:
                            acc += tmpl[d, j] * tmpl[e, i]
                    num[d, k] -= acc
            fbest[k], fwhich[k] = _best_at(k, num, cut_norm2, n, length, sd, threshold)
        for bb in range(a // block, (z - 1) // block + 1):
            m = _NONE
            for k in range(bb * block, min(n, (bb + 1) * block)):
                if fbest[k] > m:
                    m = fbest[k]
            bmax[bb] = m
    return frames[:count], which[:count]
