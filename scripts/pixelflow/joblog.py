"""Job logging for entry scripts: messages and any failure go to the rule's log file."""

import contextlib
import logging
import time
from pathlib import Path

logger = logging.getLogger("pixelflow")


@contextlib.contextmanager
def job_log(path, name: str):
    """Log to ``path`` for the duration of a job; a failure is logged, then re-raised.

    The file is overwritten. It receives the ``pixelflow`` logger's messages
    (and its children's) at INFO and above, Python warnings, a line when the job
    starts and one with its wall time when it finishes; any exception, including
    KeyboardInterrupt and SystemExit, is logged with its traceback.

    Parameters
    ----------
    path : str or path-like
        The log file; its folder is created.
    name : str
        Words naming the job in the start, finish and failure lines.

    Yields
    ------
    logging.Logger
        The ``pixelflow`` logger.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)
    started = time.perf_counter()
    logger.info("%s started", name)
    try:
        yield logger
    except BaseException as error:
        logger.error("%s failed: %s: %s", name, type(error).__name__, error, exc_info=True)
        raise
    else:
        logger.info("%s finished in %.2f s", name, time.perf_counter() - started)
    finally:
        logger.removeHandler(handler)
        logging.getLogger("py.warnings").removeHandler(handler)
        logging.captureWarnings(False)
        handler.close()
