"""The classic hand-written way to make and stack a noise dataset, as the workflow's yardstick.

Step 1: one ``multiprocessing.Pool`` maps over image indexes; each task draws a
uniform noise image with ``np.random.rand`` and writes it with ``cv2.imwrite``.
Step 2: a second pool, whose initializer hands every worker a shared
``multiprocessing.RawArray``, reads each PNG back with ``cv2.imread`` into its
slot of the array; the parent then saves the array with ``np.save``.

Deliberately plain (default chunking, default PNG settings, no atomic writes,
no manifest, no checks): this is what the workflow is compared against.

Usage: ``python benchmarks/baseline_pool.py COUNT OUTPUT_FOLDER [--processes P]``
"""

import argparse
import multiprocessing
import os
import time

import cv2
import numpy as np

_shared: dict = {}


def write_image(task):
    """Make image ``i`` and write it as ``image_{i}.png``."""
    i, out, h, w = task
    img = (np.random.rand(h, w) * 255).astype(np.uint8)
    cv2.imwrite(f"{out}/image_{i}.png", img)


def share_array(raw, shape):
    """Pool initializer: view the shared buffer as the stack array."""
    _shared["stack"] = np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def read_image(task):
    """Read ``image_{i}.png`` into slot ``i`` of the shared stack."""
    i, out = task
    _shared["stack"][i] = cv2.imread(f"{out}/image_{i}.png", cv2.IMREAD_UNCHANGED)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="number of images")
    parser.add_argument("out", help="output folder (created if missing)")
    parser.add_argument("--processes", type=int, default=os.cpu_count(), help="pool size (default: all CPUs)")
    parser.add_argument("--height", type=int, default=100)
    parser.add_argument("--width", type=int, default=100)
    args = parser.parse_args(argv)
    n, out, h, w = args.count, args.out, args.height, args.width

    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    with multiprocessing.Pool(args.processes) as pool:
        pool.map(write_image, [(i, out, h, w) for i in range(n)])
    generated = time.perf_counter()

    shape = (n, h, w)
    raw = multiprocessing.RawArray("B", n * h * w)
    with multiprocessing.Pool(args.processes, initializer=share_array, initargs=(raw, shape)) as pool:
        pool.map(read_image, [(i, out) for i in range(n)])
    stack = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
    np.save(f"{out}/stack.npy", stack)
    finished = time.perf_counter()

    print(
        f"baseline_pool: {n} images {h}x{w}, {args.processes} processes: "
        f"generate {generated - started:.2f} s, stack {finished - generated:.2f} s, "
        f"total {finished - started:.2f} s"
    )


if __name__ == "__main__":
    main()
