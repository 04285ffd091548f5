"""Progress lines for long jobs: items done of the total, the rate and the time left, at most once per interval.

A job script makes a :class:`Progress` with its logger (the one
:func:`pixelflow.joblog.job_log` yields) and hands its :meth:`Progress.advance`
to the core function, which calls it with the number of items newly done::

    progress = Progress(log, 100_000, "images")
    write_generated_shard(folder, spec, 0, 100_000, processes, progress=progress.advance)
    progress.finish()

The log then receives, at most once every ``interval`` seconds, a line such as
``1,234 of 100,000 images (1.2 %), 410 images/s, about 4 min 1 s left``. A call
that logs nothing costs one clock reading and an addition, so the count may be
advanced per item, hundreds of thousands of times.
"""

import logging
import math
import time

INTERVAL = 10.0


def format_count(count: int) -> str:
    """A count with thousands separators: ``1,234,567``."""
    return f"{count:,}"


def format_rate(rate: float) -> str:
    """A rate per second: whole numbers from 100 (``1,234``), one decimal from 10 (``41.2``), else two digits.

    Parameters
    ----------
    rate : float
        Items per second, 0 or more.

    Returns
    -------
    str
        ``1,234``, ``41.2``, ``2.3``, ``0.047``; ``0`` for 0.
    """
    if rate >= 99.5:
        return f"{rate:,.0f}"
    if rate >= 9.95:
        return f"{rate:.1f}"
    if rate <= 0:
        return "0"
    decimals = max(1, 1 - math.floor(math.log10(rate)))
    return f"{rate:.{decimals}f}"


def format_duration(seconds: float) -> str:
    """A duration in its two largest units, rounded to the second: ``45 s``, ``4 min 1 s``, ``2 h 5 min``, ``3 d 1 h``.

    Parameters
    ----------
    seconds : float
        The duration, 0 or more.

    Returns
    -------
    str
        The words; a second part that is 0 is left out (``4 min``).
    """
    whole = max(0, round(seconds))
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            rest = whole % size // smaller_size
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{whole} s"


class Progress:
    """Counts the items a job has done and logs how far it is, at most once per ``interval`` seconds.

    Lines read ``1,234 of 100,000 images (1.2 %), 410 images/s, about 4 min 1 s left``:
    the items done of the total, the share done (rounded down, so 100 % means
    all), the average rate since the start (when the Progress was made, or its
    total given, see :meth:`advance`) and the time left at that rate. Without a
    total the line gives the count and the rate; once the count reaches the
    total, no time left. The first line comes one interval after the start, and
    no two lines come closer than that. Calls are expected from one thread.

    Parameters
    ----------
    logger : logging.Logger
        Where the lines go, at INFO.
    total : int or None
        Items in the whole job, 0 or more; None while not yet known (it may be
        given later to :meth:`advance`).
    noun : str
        What the items are, in the plural: ``images``, ``tiles``, ``rows``.
    interval : float
        Seconds between lines at least; 10 by default.
    clock : callable
        Returns the time in seconds; :func:`time.monotonic` by default.

    Raises
    ------
    ValueError
        For a negative total or an interval that is not positive.
    """

    def __init__(
        self, logger: logging.Logger, total: int | None, noun: str, *, interval: float = INTERVAL, clock=time.monotonic
    ):
        if total is not None and total < 0:
            raise ValueError(f"total {total} is negative")
        if not interval > 0:
            raise ValueError(f"interval {interval} is not positive")
        self.logger, self.total, self.noun, self.interval, self.clock = logger, total, noun, float(interval), clock
        self.done = 0
        self.started = self._last = clock()
        self._due = self.started + self.interval

    def advance(self, count: int = 1, total: int | None = None) -> None:
        """Count ``count`` more items done; log a line if an interval has passed since the last one.

        Parameters
        ----------
        count : int
            Items newly done.
        total : int, optional
            The job's total, when the work learns it only once started (a core
            function announces it with ``progress(0, total=n)``). Given before
            any item is done, it also restarts the clock, so that the rate and
            the time left measure the items' work alone.
        """
        if total is not None:
            self.total = total
            if self.done == 0:
                self.started = self.clock()
                self._due = self.started + self.interval
        self.done += count
        now = self._last = self.clock()
        if now >= self._due:
            self._due = now + self.interval
            self.logger.info("%s", self.line(now))

    def line(self, now: float) -> str:
        """The progress line at time ``now`` (a reading of ``clock``).

        Parameters
        ----------
        now : float
            The time, later than the start.

        Returns
        -------
        str
            Done of total, share, rate and time left, as described for the class.
        """
        done, total, noun = self.done, self.total, self.noun
        rate = done / max(now - self.started, 1e-9)
        words = f"{format_rate(rate)} {noun}/s"
        if total is None:
            return f"{format_count(done)} {noun}, {words}"
        tenths = min(1000, done * 1000 // total) if total > 0 else 1000
        text = f"{format_count(done)} of {format_count(total)} {noun} ({tenths // 10}.{tenths % 10} %), {words}"
        if done < total and rate > 0:
            text += f", about {format_duration(math.ceil((total - done) / rate))} left"  # never "0 s" before the end
        return text

    def finish(self) -> None:
        """Log the count, the time it took and the rate, if counting took an interval or longer; else nothing.

        The time runs from the start to the last :meth:`advance`, so work done
        after the last count (writing the result) is left out; so the line
        comes when progress lines came before it, and not for shorter work.
        """
        elapsed = self._last - self.started
        if elapsed >= self.interval:
            noun = self.noun
            self.logger.info(
                "%s",
                f"done: {format_count(self.done)} {noun} in {format_duration(elapsed)}, "
                f"{format_rate(self.done / elapsed)} {noun}/s",
            )
