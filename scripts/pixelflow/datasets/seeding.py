"""Image random streams for a whole range of indexes without a SeedSequence per image.

:func:`state_words` reproduces numpy's ``SeedSequence(seed, spawn_key=(key, i)).generate_state(4, np.uint64)``
(numpy/random/bit_generator.pyx) for many indexes at once with uint32 array arithmetic, and :func:`seed_pcg64`
puts a PCG64 into the state ``PCG64`` seeds itself with from those words (numpy/random/src/pcg64). So
:class:`ImageStreams` gives exactly the streams of :func:`pixelflow.datasets.generators.image_rng`;
tests/unit/datasets/test_seeding.py checks every step against numpy itself.
"""

import numpy as np

from pixelflow.datasets.generators import dataset_key

POOL_SIZE = 4
INIT_A, MULT_A = 0x43B0D7E5, 0x931E8875  # mix_entropy's hash constants
INIT_B, MULT_B = 0x8B51F9DD, 0x58F38DED  # generate_state's
MIX_MULT_L, MIX_MULT_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
MASK32 = 0xFFFFFFFF
PCG64_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
MASK128 = (1 << 128) - 1


def int_words(value: int) -> list[int]:
    """The uint32 words SeedSequence makes of a non-negative integer, lowest first (0 is one word).

    Raises
    ------
    ValueError
        For a negative integer, naming it.
    """
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    words = [value & MASK32]
    value >>= 32
    while value:
        words.append(value & MASK32)
        value >>= 32
    return words


def hashmix(values: np.ndarray, const: int, multiplier: int) -> tuple[np.ndarray, int]:
    """SeedSequence's hash of uint32 ``values`` with hash constant ``const``; returns them and the next constant.

    Parameters
    ----------
    values : ndarray
        uint32 words.
    const : int
        The current hash constant, below 2**32.
    multiplier : int
        What the constant is multiplied by (mod 2**32) before use.

    Returns
    -------
    hashed : ndarray
        uint32, of ``values``' shape.
    const : int
        The constant for the next call.
    """
    values = values ^ np.uint32(const)
    const = const * multiplier & MASK32
    values = values * np.uint32(const)  # uint32 arrays wrap around
    return values ^ (values >> np.uint32(16)), const


def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SeedSequence's mix of two uint32 arrays, broadcast against each other (uint32 result)."""
    result = MIX_MULT_L * x - MIX_MULT_R * y
    return result ^ (result >> np.uint32(16))


def mix_entropy(columns: list[np.ndarray]) -> np.ndarray:
    """SeedSequence's 4-word pool, one row per entropy row.

    ``columns`` are the entropy words in order (at least 4), each a uint32 array;
    they broadcast against each other, so words shared by all rows can be 1-element arrays.

    Returns
    -------
    ndarray
        (n, 4) uint32, n the broadcast length of the columns.
    """
    const = INIT_A
    pool = []
    for column in columns[:POOL_SIZE]:
        hashed, const = hashmix(column, const, MULT_A)
        pool.append(hashed)
    for source in range(POOL_SIZE):
        for target in range(POOL_SIZE):
            if source != target:
                hashed, const = hashmix(pool[source], const, MULT_A)
                pool[target] = mix(pool[target], hashed)
    for column in columns[POOL_SIZE:]:
        for target in range(POOL_SIZE):
            hashed, const = hashmix(column, const, MULT_A)
            pool[target] = mix(pool[target], hashed)
    return np.stack(np.broadcast_arrays(*pool), axis=1)


def generate_state(pool: np.ndarray) -> np.ndarray:
    """``generate_state(4, np.uint64)`` of each row of an (n, 4) uint32 pool, as an (n, 4) uint64 array."""
    const = INIT_B
    words = np.empty((len(pool), 2 * POOL_SIZE), dtype="<u4")
    for column in range(2 * POOL_SIZE):
        words[:, column], const = hashmix(pool[:, column % POOL_SIZE], const, MULT_B)
    return words.view("<u8").astype(np.uint64)


def state_words(seed: int, key: int, start: int, stop: int) -> np.ndarray:
    """Rows ``SeedSequence(seed, spawn_key=(key, i)).generate_state(4, np.uint64)`` for i in start..stop-1.

    Indexes from 2**64 on are left to numpy's SeedSequence, one at a time.

    Parameters
    ----------
    seed : int
        The master seed, non-negative.
    key : int
        The dataset's key (:func:`pixelflow.datasets.generators.dataset_key`).
    start, stop : int
        The index range; ``stop <= start`` gives no rows.

    Returns
    -------
    ndarray
        (stop - start, 4) uint64.

    Raises
    ------
    ValueError
        For a negative ``start`` or ``seed``, naming it.
    """
    if start < 0:
        raise ValueError(f"expected non-negative indexes, got {start}")
    run = int_words(seed)
    run += [0] * (POOL_SIZE - len(run))  # SeedSequence pads short run entropy when there is a spawn key
    prefix = [np.array([word], dtype=np.uint32) for word in run + int_words(key)]
    parts = [np.empty((0, 4), dtype=np.uint64)]
    # An index is one entropy word below 2**32 and two below 2**64.
    for low, high, count in ((start, min(stop, 2**32), 1), (max(start, 2**32), min(stop, 2**64), 2)):
        if low < high:
            indexes = np.arange(low, high, dtype=np.uint64)
            index_columns = [(indexes >> np.uint64(32 * k) & np.uint64(MASK32)).astype(np.uint32) for k in range(count)]
            parts.append(generate_state(mix_entropy(prefix + index_columns)))
    beyond = range(max(start, 2**64), stop)
    if beyond:
        sequences = (np.random.SeedSequence(seed, spawn_key=(key, i)) for i in beyond)
        parts.append(np.array([sequence.generate_state(4, np.uint64) for sequence in sequences]))
    return np.concatenate(parts)


def seed_pcg64(bit_generator: np.random.PCG64, words) -> None:
    """Put ``bit_generator`` into the state of ``PCG64(sequence)``; ``words`` is ``sequence.generate_state(4, "u8")``.

    As pcg64_set_seed: words 0-1 are the initial state and words 2-3 the stream, high word first,
    then pcg_setseq_128_srandom_r; a fresh PCG64 holds no spare 32-bit half either.
    """
    w0, w1, w2, w3 = map(int, words)
    inc = ((w2 << 64 | w3) << 1 | 1) & MASK128
    state = ((inc + (w0 << 64 | w1)) * PCG64_MULTIPLIER + inc) & MASK128
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": inc},
        "has_uint32": 0,
        "uinteger": 0,
    }


class ImageStreams:
    """The random generators of images ``start..stop-1`` of ``dataset``, equal to ``image_rng``'s.

    One PCG64 and one Generator serve every index: the generator returned for an
    index is repositioned by the next call, and its ``seed_seq`` is not the image's.

    Parameters
    ----------
    seed : int
        The master seed, non-negative.
    dataset : str
        The dataset's name.
    start, stop : int
        The images served, ``start..stop-1``; their state words are derived here.
    """

    def __init__(self, seed: int, dataset: str, start: int, stop: int):
        self.start, self.stop = start, stop
        self.words = state_words(seed, dataset_key(dataset), start, stop)
        self.bit_generator = np.random.PCG64(0)
        self.generator = np.random.Generator(self.bit_generator)

    def __call__(self, index: int) -> np.random.Generator:
        """The generator of image ``index``, positioned at the start of its stream.

        Raises
        ------
        IndexError
            For an index outside ``start..stop-1``, naming it.
        """
        if not self.start <= index < self.stop:
            raise IndexError(f"image {index} is outside {self.start}..{self.stop - 1}")
        seed_pcg64(self.bit_generator, self.words[index - self.start].tolist())
        return self.generator
