"""Simulators of ground-truth spike trains and the calcium traces they cause.

``simulate(preset="GCaMP6s", cells=50, noise=2, seed=1)`` returns a :class:`cabench.TraceSet`;
:class:`Simulation` streams large populations to a trace file. Imports are lazy so that the
command line stays fast.
"""

__all__ = ["Simulation", "simulate"]


def __getattr__(name):
    if name in __all__:
        from cabench.simulators import pipeline as _sim

        return getattr(_sim, name)
    raise AttributeError(name)
