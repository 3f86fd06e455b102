"""cabench: simulate, generate and benchmark spike inference from calcium imaging.

Arrays are ``(trials, cells, frames)`` float32 dF/F as a fraction; times are in seconds and frame
rates in Hz.
"""

__version__ = "0.1.0"

from cabench.errors import CabenchError
from cabench.traceset import TraceSet

__all__ = ["CabenchError", "TraceSet", "__version__"]
