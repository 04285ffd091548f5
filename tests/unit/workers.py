"""Module-level worker functions for the runner tests.

They must be importable by name in spawned and forkserver children, so they
live here (module ``<tests root>.unit.workers``) rather than in test files.
"""

import os
import signal

_state: dict = {}


def square(x: int) -> int:
    return x * x


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def describe(x) -> str:
    return f"item #{x}"


def fail_at_13(x: int) -> int:
    if x == 13:
        raise ValueError(f"thirteen is unlucky (got {x})")
    return x


def sigkill_at_7(x: int) -> int:
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def exit_at_5(x: int) -> int:
    if x == 5:
        os._exit(3)
    return x


def remember_initializer(token: str) -> None:
    """Initializer: count the calls for ``token`` in this process and note the process id."""
    entry = _state.setdefault(token, {"calls": 0, "pid": None})
    entry["calls"] += 1
    entry["pid"] = os.getpid()


def initializer_record(token_and_x: tuple[str, int]) -> tuple[int, int | None, int]:
    """(initializer calls for the token, pid that ran the initializer, this pid)."""
    token, _ = token_and_x
    entry = _state.get(token, {"calls": 0, "pid": None})
    return entry["calls"], entry["pid"], os.getpid()


def failing_initializer() -> None:
    raise RuntimeError("initializer broke")


def native_threads(_) -> dict:
    """The native thread caps seen inside a worker."""
    import cv2
    from threadpoolctl import threadpool_info

    return {
        "opencv": cv2.getNumThreads(),
        "pools": sorted({pool["num_threads"] for pool in threadpool_info()}),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def generated_bytes(args: tuple) -> bytes:
    """Raw pixel bytes of ``generate_image(*args)``."""
    from pixelflow.datasets.generators import generate_image

    return generate_image(*args).tobytes()


def unpicklable_result(x: int):
    """A result that cannot be sent back to the parent."""
    import threading

    return threading.Lock()


def sigkill_initializer() -> None:
    """An initializer whose worker dies before its first item."""
    os.kill(os.getpid(), signal.SIGKILL)


def nap(x: int) -> int:
    """Return ``x`` after a twentieth of a second."""
    import time

    time.sleep(0.05)
    return x


def report_units(x: int) -> int:
    """Report ``x`` units of work done to the map's progress callback; return ``x``."""
    from pixelflow.runner import report_done

    report_done(x)
    return x
