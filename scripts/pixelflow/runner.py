"""The shared parallel runner: an ordered, chunked, fail-fast process pool.

Every stage maps a worker function over work items with :func:`parallel_map`.
Worker functions must live at module level in ``pixelflow`` so that they are
importable by name under the fork, spawn and forkserver start methods. Each
worker caps its native thread pools (OpenCV, BLAS/OpenMP) so that processes x
threads never exceeds the job's threads.

A worker that raises, or dies from a signal, stops the whole map at once with
a :class:`WorkerError` naming the item and the cause; the other workers are
killed, so a broken job never hangs.

With a ``progress`` callback, each worker counts the items it has finished in
shared memory (or the units its function reports with :func:`report_done`), and
the parent passes the new counts to the callback about once a second.
"""

import math
import multiprocessing
import os
import signal
import traceback
from collections import deque
from multiprocessing.connection import wait

from pixelflow.errors import WorkerError

START_METHOD_VARIABLE = "PIXELFLOW_START_METHOD"
NATIVE_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


STARTING = -2  # a worker's slot before its start-up finished
IDLE = -1  # a worker's slot between chunks
PROGRESS_POLL = 1.0  # seconds between the parent's looks at the workers' counts, with a progress callback

_report = None  # while a map with a progress callback runs: counts the units report_done is given


def limit_native_threads(threads: int) -> None:
    """Cap OpenCV's and the BLAS/OpenMP libraries' thread pools in this process.

    Sets the :data:`NATIVE_THREAD_VARIABLES` (read by libraries loaded later
    and inherited by child processes) and limits the pools already loaded.

    Parameters
    ----------
    threads : int
        Threads per pool; values below 1 count as 1.
    """
    threads = max(1, int(threads))
    for variable in NATIVE_THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(threads)
    threadpool_limits(threads)


def default_start_method() -> str:
    """The start method from ``PIXELFLOW_START_METHOD``, else fork where available.

    Returns
    -------
    str
        ``fork``, ``spawn`` or ``forkserver``; spawn where fork does not exist.

    Raises
    ------
    ValueError
        Naming the variable, when it holds a method this platform lacks.
    """
    method = os.environ.get(START_METHOD_VARIABLE)
    if method:
        if method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"{START_METHOD_VARIABLE}={method!r} is not a start method here")
        return method
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def chunk_bounds(count: int, processes: int, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """Split ``range(count)`` into contiguous ``(start, stop)`` chunks.

    By default each process gets about four chunks, enough to balance uneven
    items without paying inter-process traffic per item.

    Parameters
    ----------
    count : int
        Number of items; 0 or less gives no chunks.
    processes : int
        Number of worker processes (below 1 counts as 1).
    chunk_size : int, optional
        Items per chunk (at least 1); by default ``ceil(count / (4 * processes))``.

    Returns
    -------
    list of tuple of int
        ``(start, stop)`` of each chunk in order; only the last may be shorter.
    """
    if count <= 0:
        return []
    if chunk_size is None:
        chunk_size = math.ceil(count / (max(1, processes) * 4))
    chunk_size = max(1, int(chunk_size))
    return [(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]


def _describe(describe, item) -> str:
    try:
        text = describe(item)
    except Exception:
        text = repr(item)
    return text if len(text) <= 200 else text[:197] + "..."


def _failure(item_text: str, error: BaseException) -> str:
    trace = "".join(traceback.format_exception(error)).rstrip()
    return f"{item_text} failed: {type(error).__name__}: {error}\n{trace}"


def _signal_name(exitcode: int) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def report_done(count: int = 1) -> None:
    """Count ``count`` units of work done, from a function that :func:`parallel_map` runs with ``count_items=False``.

    The units reach the map's ``progress`` callback in the parent. Outside such
    a map, without a callback, or for a count of 0, nothing happens.

    Parameters
    ----------
    count : int
        Units newly done.
    """
    if _report is not None and count:
        _report(count)


def _counter(done, slot: int):
    """A function adding its argument to ``done[slot]``."""

    def count(units: int) -> None:
        done[slot] += units

    return count


def _worker_main(connection, func, initializer, initargs, threads, current, slot, done=None, count_items=True):
    """Run chunks sent by the parent until told to stop or the parent goes away.

    ``done[slot]`` (shared with the parent), when given, counts the finished
    items, or with ``count_items`` false the units passed to :func:`report_done`.
    """
    global _report
    _report = _counter(done, slot) if done is not None and not count_items else None
    try:
        limit_native_threads(threads)
        if initializer is not None:
            initializer(*initargs)
    except BaseException as error:
        connection.send(("error", -1, _failure("worker start-up", error)))
        return
    current[slot] = IDLE
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        chunk_id, start, items, describe = message
        results = []
        for offset, item in enumerate(items):
            current[slot] = start + offset
            try:
                results.append(func(item))
            except BaseException as error:
                connection.send(("error", start + offset, _failure(_describe(describe, item), error)))
                return
            if done is not None and count_items:
                done[slot] += 1
        current[slot] = IDLE
        try:
            connection.send(("done", chunk_id, results))
        except Exception as error:  # a result that cannot be pickled: nothing was sent yet
            where = f"{_describe(describe, items[0])} .. {_describe(describe, items[-1])} (sending results)"
            connection.send(("error", start, _failure(where, error)))
            return


def _run_inline(func, items, threads, initializer, initargs, describe, progress=None, count_items=True):
    global _report
    limit_native_threads(threads)
    if initializer is not None:
        initializer(*initargs)
    results = []
    outer, _report = _report, (progress if progress is not None and not count_items else None)
    try:
        for item in items:
            try:
                results.append(func(item))
            except Exception as error:
                raise WorkerError(_failure(_describe(describe, item), error)) from error
            if progress is not None and count_items:
                progress(1)
    finally:
        _report = outer
    return results


def parallel_map(
    func,
    items,
    processes: int,
    *,
    threads_per_process: int = 1,
    chunk_size: int | None = None,
    initializer=None,
    initargs=(),
    describe=repr,
    start_method: str | None = None,
    progress=None,
    count_items: bool = True,
) -> list:
    """Return ``[func(item) for item in items]`` computed by worker processes.

    Parameters
    ----------
    func : callable
        Module-level function of one item.
    items : sequence
        Work items; they are sent to workers in contiguous chunks.
    processes : int
        Number of worker processes; 1 (or a single item) runs in this process.
    threads_per_process : int
        Native threads each worker may use (OpenCV, BLAS).
    chunk_size : int, optional
        Items per chunk; by default about four chunks per process.
    initializer, initargs
        Called once in each worker before its first chunk (and inline).
    describe : callable
        Turns an item into the words used in error messages, e.g. a file name.
        It runs in the workers, so it must be importable by name too.
    start_method : str, optional
        fork, spawn or forkserver; default from ``PIXELFLOW_START_METHOD``.
    progress : callable, optional
        Called in this process with the number of items newly done (an int
        above 0): after each item when the map runs here, else about once a
        second while the workers run, the last time once every item is done.
        The counts add up to ``len(items)``.
    count_items : bool
        With False, ``progress`` receives instead the units ``func`` reports
        with :func:`report_done` (blocks, rows), which add up to what it reports.

    Returns
    -------
    list
        ``func(item)`` for every item, in the order of ``items``.

    Raises
    ------
    WorkerError
        When an item raises (naming it and the cause) or a worker dies.
    """
    items = list(items)
    processes = max(1, min(int(processes), len(items)))
    if processes == 1:
        return _run_inline(func, items, threads_per_process, initializer, initargs, describe, progress, count_items)

    context = multiprocessing.get_context(start_method or default_start_method())
    current = context.RawArray("q", processes)
    done = context.RawArray("q", processes) if progress is not None else None  # items (or units) done per worker
    reported = 0

    def report():
        nonlocal reported
        count = sum(done)
        if count > reported:
            progress(count - reported)
            reported = count

    bounds = chunk_bounds(len(items), processes, chunk_size)
    queue = deque(enumerate(bounds))
    results: list = [None] * len(bounds)
    workers = []
    # A forked child inherits OpenCV's thread pool without its threads and would wait
    # for them forever: stop them while the workers start (OpenCV restarts them on demand).
    import cv2

    parent_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for slot in range(processes):
            current[slot] = STARTING
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(child_end, func, initializer, initargs, threads_per_process, current, slot, done, count_items),
                daemon=True,
                name=f"pixelflow-worker-{slot}",
            )
            process.start()
            child_end.close()
            workers.append({"process": process, "pipe": parent_end, "slot": slot, "chunk": None})

        def dispatch(worker):
            if queue:
                chunk_id, (start, stop) = queue.popleft()
                worker["chunk"] = chunk_id
                message = (chunk_id, start, items[start:stop], describe)
            else:
                worker["chunk"] = message = None
            try:
                worker["pipe"].send(message)
            except OSError:
                pass  # the worker is gone; its sentinel reports why

        for worker in workers:
            dispatch(worker)
        remaining = len(bounds)
        while remaining:
            busy = [w for w in workers if w["chunk"] is not None]
            by_pipe = {w["pipe"]: w for w in busy}
            by_sentinel = {w["process"].sentinel: w for w in busy}
            ready = wait(list(by_pipe) + list(by_sentinel), None if progress is None else PROGRESS_POLL)
            pipes_ready = [r for r in ready if r in by_pipe]
            for pipe in pipes_ready:
                worker = by_pipe[pipe]
                try:
                    kind, key, payload = pipe.recv()
                except (EOFError, OSError):
                    continue  # the sentinel reports the death below
                if kind == "error":
                    raise WorkerError(payload)
                results[key] = payload
                remaining -= 1
                dispatch(worker)
            for sentinel in (r for r in ready if r in by_sentinel):
                worker = by_sentinel[sentinel]
                if worker["chunk"] is None:
                    continue
                process = worker["process"]
                process.join(timeout=1)
                index = current[worker["slot"]]
                if index >= 0:
                    where = f"while processing {_describe(describe, items[index])}"
                elif index == STARTING:
                    where = "during worker start-up (initializer, or importing the worker function)"
                else:
                    where = "between chunks"
                raise WorkerError(f"worker process {process.pid} died from {_signal_name(process.exitcode)} {where}")
            if progress is not None:
                report()
    finally:
        cv2.setNumThreads(parent_threads)
        for worker in workers:
            if worker["process"].is_alive():
                worker["process"].kill()
        for worker in workers:
            worker["process"].join(timeout=5)
            worker["pipe"].close()
    return [result for chunk in results for result in chunk]
