"""Spike-inference methods: one class per algorithm, one explicit registry.

``get_method("oasis-ar1").infer(traces, frame_rate)`` returns an
:class:`~cabench.benchmark.methods.base.InferenceResult` whose ``estimate`` is in expected
spikes per frame (same shape as the ``(trials, cells, frames)`` or ``(cells, frames)`` dF/F
input) and whose ``spike_times`` are in seconds. ``available()`` lists every registered
method, ``installed()`` those whose dependencies import, ``ready()`` those that also run with
their default parameters (a supervised method needs its shipped model), ``describe_methods()``
gives the rows of a methods table (name, installed, description, parameter table).
"""

from __future__ import annotations

from typing import Any

from cabench.benchmark.methods.base import (
    OUTPUT_UNIT,
    InferenceResult,
    Method,
    Param,
    spike_times_from_estimate,
)
from cabench.benchmark.methods.cascade import Cascade
from cabench.benchmark.methods.cnn import Cnn
from cabench.benchmark.methods.derivative import Derivative
from cabench.benchmark.methods.oasis_ar1 import OasisAR1
from cabench.benchmark.methods.oasis_ar2 import OasisAR2
from cabench.benchmark.methods.oasis_kernel import OasisKernel
from cabench.benchmark.methods.oasis_l0 import OasisL0
from cabench.benchmark.methods.peeling import Peeling
from cabench.benchmark.methods.wiener import Wiener
from cabench.errors import CabenchError

#: The registry: every method cabench knows, in the order tables list them.
METHODS: tuple[type[Method], ...] = (
    OasisAR1,
    OasisAR2,
    OasisL0,
    OasisKernel,
    Peeling,
    Wiener,
    Derivative,
    Cnn,
    Cascade,
)

_BY_NAME: dict[str, type[Method]] = {m.name: m for m in METHODS}
assert len(_BY_NAME) == len(METHODS), "method names must be unique"

__all__ = [
    "METHODS",
    "OUTPUT_UNIT",
    "InferenceResult",
    "Method",
    "Param",
    "available",
    "describe_methods",
    "get_method",
    "installed",
    "method_class",
    "ready",
    "spike_times_from_estimate",
]


def available() -> list[str]:
    """Names of all registered methods."""
    return [m.name for m in METHODS]


def installed() -> list[str]:
    """Names of the registered methods whose dependencies can be imported."""
    return [m.name for m in METHODS if m.is_installed()]


def ready() -> list[str]:
    """Names of the methods that run with their default parameters (installed, and their
    default trained model present for methods that ship one)."""
    return [m.name for m in METHODS if m.is_ready()]


def method_class(name: str) -> type[Method]:
    """The class registered under ``name``; CabenchError listing the valid names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise CabenchError(
            f"unknown method {name!r}; available: {', '.join(available())}"
        ) from None


def get_method(name: str, **params: Any) -> Method:
    """A method instance with validated parameters (unknown ones refused, valid ones listed)."""
    return method_class(name)(**params)


def describe_methods() -> list[dict[str, Any]]:
    """One row per method: name, installed, version, description, output unit, needs_training,
    needs_gpu, install_hint and ``params`` (the parameter table: name, type, default, range,
    unit, description)."""
    rows = []
    for m in METHODS:
        ok = m.is_installed()
        rows.append(
            dict(
                name=m.name,
                installed=ok,
                version=m.version() if ok else "",
                description=m.description,
                output_unit=m.output_unit,
                needs_training=m.needs_training,
                needs_gpu=m.needs_gpu,
                install_hint=m.install_hint,
                params=m.param_table(),
            )
        )
    return rows
