"""cabench: simulate, generate and benchmark spike inference from calcium imaging.

Arrays are ``(trials, cells, frames)`` float32 dF/F as a fraction; times are in seconds and frame
rates in Hz. ``TraceSet`` is imported lazily so that the command line starts fast.
"""

__version__ = "0.1.0"

from cabench.errors import CabenchError

__all__ = ["CabenchError", "TraceSet", "__version__"]


def __getattr__(name):
    if name == "TraceSet":
        from cabench.traceset import TraceSet

        return TraceSet
    raise AttributeError(name)
