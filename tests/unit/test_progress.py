"""Progress lines: when they come (never closer than the interval), what they say, and the words for numbers."""

import logging
import uuid

import pytest
from pixelflow.progress import Progress, format_count, format_duration, format_rate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Keeps each message logged, with the clock's time when it came."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock, self.lines = clock, []

    def emit(self, record):
        self.lines.append((self.clock.now, record.levelno, record.getMessage()))


@pytest.fixture
def clock():
    return Clock(1000.0)  # any start: only differences count


@pytest.fixture
def logger(clock):
    """A logger of its own whose handler keeps the lines (``logger.handlers[0].lines``)."""
    logger = logging.getLogger(f"pixelflow.test-progress-{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = Lines(clock)
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def progress(logger, clock, total, noun="images", interval=10.0):
    return Progress(logger, total, noun, interval=interval, clock=clock)


def logged(logger) -> list[tuple]:
    """(time, level, message) of each line logged."""
    return logger.handlers[0].lines


def texts(logger) -> list[str]:
    return [text for _, _, text in logged(logger)]


def test_no_line_before_the_interval(logger, clock):
    counter = progress(logger, clock, 1000)
    for step in range(999):
        clock.now = 1000.0 + step * 0.01  # up to 9.98 s after the start
        counter.advance()
    assert logged(logger) == []
    clock.now = 1010.0
    counter.advance()
    assert len(logged(logger)) == 1
    assert logged(logger)[0][1] == logging.INFO


def test_many_calls_give_at_most_one_line_per_interval(logger, clock):
    counter = progress(logger, clock, 300_000)
    calls = 300_000
    for call in range(calls):
        clock.now = 1000.0 + call * 95.0 / calls  # 95 s of calls, about 3,000 a second
        counter.advance()
    times = [time for time, _, _ in logged(logger)]
    assert len(times) == 9  # at 10, 20, ... 90 s
    assert all(later - earlier >= 10.0 for earlier, later in zip(times, times[1:], strict=False))
    assert times[0] >= 1010.0


def test_lines_keep_the_interval_after_a_pause(logger, clock):
    counter = progress(logger, clock, 100, interval=5.0)
    for now in (1007.0, 1008.0, 1011.9, 1012.0, 1030.0, 1030.5):
        clock.now = now
        counter.advance()
    assert [time for time, _, _ in logged(logger)] == [1007.0, 1012.0, 1030.0]


def test_a_line_says_done_of_total_share_rate_and_time_left(logger, clock):
    counter = progress(logger, clock, 100_000)
    clock.now = 1010.0
    counter.advance(4_100)  # 410 a second; 95,900 left: 233.9 s
    assert texts(logger) == ["4,100 of 100,000 images (4.1 %), 410 images/s, about 3 min 54 s left"]


def test_the_example_of_the_issue(logger, clock):
    counter = progress(logger, clock, 100_000, interval=3.0)
    clock.now = 1000.0 + 1234 / 410  # 1,234 images at 410 a second; 98,766 left: 240.9 s
    counter.advance(1234)
    assert texts(logger) == ["1,234 of 100,000 images (1.2 %), 410 images/s, about 4 min 1 s left"]


def test_counts_add_up_over_calls(logger, clock):
    counter = progress(logger, clock, 20, noun="tiles", interval=1.0)
    for count in (3, 4, 5):
        clock.now += 1.0
        counter.advance(count)
    # 12 tiles in 3 s: 4 a second, 8 left: 2 s
    assert texts(logger)[-1] == "12 of 20 tiles (60.0 %), 4.0 tiles/s, about 2 s left"
    assert counter.done == 12


def test_the_share_is_rounded_down_so_that_100_percent_means_all(logger, clock):
    counter = progress(logger, clock, 100_000)
    clock.now = 1100.0
    counter.advance(99_999)
    assert texts(logger) == ["99,999 of 100,000 images (99.9 %), 1,000 images/s, about 1 s left"]  # rounded up


def test_all_done_gives_no_time_left(logger, clock):
    counter = progress(logger, clock, 50)
    clock.now = 1020.0
    counter.advance(50)
    assert texts(logger) == ["50 of 50 images (100.0 %), 2.5 images/s"]


def test_overshoot_is_shown_as_counted_and_capped_at_100_percent(logger, clock):
    counter = progress(logger, clock, 10)
    clock.now = 1010.0
    counter.advance(15)
    assert texts(logger) == ["15 of 10 images (100.0 %), 1.5 images/s"]


def test_zero_total(logger, clock):
    counter = progress(logger, clock, 0)
    clock.now = 1010.0
    counter.advance(0)
    assert texts(logger) == ["0 of 0 images (100.0 %), 0 images/s"]
    clock.now = 1012.0
    counter.finish()
    assert texts(logger)[-1] == "done: 0 images in 10 s, 0 images/s"


def test_nothing_done_yet_gives_no_time_left(logger, clock):
    counter = progress(logger, clock, 10)
    clock.now = 1030.0
    counter.advance(0)
    assert texts(logger) == ["0 of 10 images (0.0 %), 0 images/s"]


def test_without_a_total_a_line_gives_the_count_and_rate(logger, clock):
    counter = progress(logger, clock, None, noun="rows")
    clock.now = 1010.0
    counter.advance(2_500)
    assert texts(logger) == ["2,500 rows, 250 rows/s"]


def test_a_total_given_before_any_item_restarts_the_clock(logger, clock):
    counter = progress(logger, clock, None, noun="tiles")
    clock.now = 1030.0  # 30 s of reading before the tiles are planned
    counter.advance(0, total=40)
    assert logged(logger) == [] and counter.total == 40
    clock.now = 1039.0
    counter.advance(9)
    assert logged(logger) == []
    clock.now = 1040.0
    counter.advance(1)  # 10 tiles in the 10 s since the total came
    assert texts(logger) == ["10 of 40 tiles (25.0 %), 1.0 tiles/s, about 30 s left"]


def test_finish_is_silent_for_work_within_one_interval(logger, clock):
    counter = progress(logger, clock, 5)
    clock.now = 1009.0
    counter.advance(5)
    counter.finish()
    assert logged(logger) == []


def test_finish_leaves_out_the_time_after_the_last_count(logger, clock):
    counter = progress(logger, clock, 5)
    clock.now = 1009.0
    counter.advance(5)
    clock.now = 1030.0  # the job writes its result
    counter.finish()
    assert logged(logger) == []


def test_finish_gives_the_time_and_rate_of_longer_work(logger, clock):
    counter = progress(logger, clock, 100_000)
    for step in range(1, 245):
        clock.now = 1000.0 + step
        counter.advance(410)
    clock.now = 1000.0 + 100_000 / 410  # 243.9 s
    counter.advance(100_000 - counter.done)
    clock.now += 30.0  # writing the result is not counted
    counter.finish()
    assert len(logged(logger)) == 25  # 24 progress lines and the last
    assert texts(logger)[-1] == "done: 100,000 images in 4 min 4 s, 410 images/s"


def test_bad_settings_are_refused():
    logger = logging.getLogger("pixelflow.test-progress")
    with pytest.raises(ValueError, match="negative"):
        Progress(logger, -1, "images")
    with pytest.raises(ValueError, match="interval"):
        Progress(logger, 1, "images", interval=0)


def test_the_default_clock_and_interval(logger):
    counter = Progress(logger, 10**9, "images")
    for _ in range(100_000):
        counter.advance()
    assert counter.interval == 10.0 and counter.done == 100_000
    assert logged(logger) == []  # 100,000 calls take far less than 10 s


@pytest.mark.parametrize(
    ("count", "words"), [(0, "0"), (7, "7"), (1234, "1,234"), (100_000, "100,000"), (12_345_678, "12,345,678")]
)
def test_counts_have_thousands_separators(count, words):
    assert format_count(count) == words


@pytest.mark.parametrize(
    ("rate", "words"),
    [
        (0, "0"),
        (0.0473, "0.047"),
        (0.5, "0.50"),
        (2.345, "2.3"),
        (9.96, "10.0"),
        (41.25, "41.2"),
        (99.6, "100"),
        (410.4, "410"),
        (123_456.7, "123,457"),
        (0.00001, "0.000010"),
    ],
)
def test_rates_have_a_few_significant_digits(rate, words):
    assert format_rate(rate) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (0.4, "0 s"),
        (44.6, "45 s"),
        (60, "1 min"),
        (241, "4 min 1 s"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
        (86400 * 3 + 3600, "3 d 1 h"),
    ],
)
def test_durations_use_their_two_largest_units(seconds, words):
    assert format_duration(seconds) == words
