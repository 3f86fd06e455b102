"""Run independent tasks serially, in a local process pool or on a dask.distributed cluster.

:func:`run_tasks` yields ``(index, fn(*args))`` as results come in. Where the work runs:

- no scheduler, ``jobs <= 1`` or one task: serially, in this process;
- no scheduler, ``jobs > 1``: ``jobs`` worker processes started by *forkserver* (spawn where
  there is none), not fork: the suite runner simulates datasets with numba ``parallel=True``
  code first, and numba kills a process forked from a parent that used its OpenMP (GNU libgomp)
  threading layer as soon as it runs parallel code. Workers import cabench once (~1 s, in
  parallel); a script calling this needs the ``if __name__ == "__main__":`` guard;
- ``scheduler`` given (``"tcp://host:8786"``, a ``distributed.Client`` or a cluster): on that
  dask cluster; ``jobs`` is ignored. ``fn`` must be importable there; files it writes land on
  the workers' disks.

Every call runs with one BLAS/OpenMP and one numba thread, so that ``jobs`` workers use
``jobs`` cores and results do not depend on where a task ran (OpenBLAS splits long dot
products between threads, which changes the last bits of a correlation). Pool workers get
OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1 before those libraries load (they read them only then;
dask's nanny sets all but numba's); around each call threadpoolctl (if installed) limits the
loaded libraries and numba is set to one thread. The suite's cases are single-threaded code:
serial runs lose no speed by it.
An exception raised by ``fn`` is re-raised here; tasks not started yet are cancelled.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from cabench.errors import CabenchError

THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def run_tasks(fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], jobs: int = 1,
              scheduler: Any = None, timeout: float = 10.0) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, fn(*tasks[i]))`` for every task, in order of completion. ``fn``: a picklable
    top-level function. ``timeout`` (s) bounds connecting to a scheduler; an unreachable or
    malformed one, or no dask.distributed, raises CabenchError on the first iteration."""
    tasks = list(tasks)
    if scheduler is not None:
        yield from _run_dask(fn, tasks, scheduler, timeout)
    elif jobs <= 1 or len(tasks) <= 1:
        for i, args in enumerate(tasks):
            yield i, _call(fn, *args)
    else:
        yield from _run_pool(fn, tasks, jobs)


def _one_thread_env() -> None:
    """Pool initializer: libraries loaded from now on start with one thread."""
    os.environ.update(dict.fromkeys(THREADS, "1"))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One thread in the loaded BLAS/OpenMP libraries (threadpoolctl) and numba, then restore."""
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(1))
        import numba  # a cabench dependency; imported here so that a fresh dask worker is limited

        stack.callback(numba.set_num_threads, numba.get_num_threads())
        numba.set_num_threads(1)
        yield


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    with one_thread():
        return fn(*args)


def _run_pool(fn: Callable[..., Any], tasks: list[Any], jobs: int) -> Iterator[tuple[int, Any]]:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=_one_thread_env,
                               mp_context=multiprocessing.get_context(method))
    try:
        pending = {pool.submit(_call, fn, *args): i for i, args in enumerate(tasks)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield pending.pop(fut), fut.result()
    finally:  # also on an error or when the caller stops early: drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(fn: Callable[..., Any], tasks: list[Any], scheduler: Any, timeout: float
              ) -> Iterator[tuple[int, Any]]:
    try:
        import distributed
    except ImportError:
        msg = "--scheduler needs dask.distributed: pip install 'cabench[dask]'"
        raise CabenchError(msg) from None
    if isinstance(scheduler, distributed.Client):
        client, own = scheduler, False
    else:
        where = getattr(scheduler, "scheduler_address", scheduler)
        try:
            client, own = distributed.Client(scheduler, timeout=timeout), True
        except OSError:  # TimeoutError included
            msg = f"cannot reach the dask scheduler at {where} within {timeout:g} s"
            raise CabenchError(msg) from None
        except ValueError as e:  # e.g. no port number
            raise CabenchError(f"dask scheduler address {where!r}: {e}") from None
    futures = {client.submit(_call, fn, *args, pure=False): i for i, args in enumerate(tasks)}
    try:
        for fut in distributed.as_completed(futures):
            yield futures[fut], fut.result()
    finally:
        client.cancel([f for f in futures if not f.done()])
        if own:
            client.close()
