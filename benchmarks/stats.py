"""Benchmarks of the stats stage: the scikit-image/dask batch example end to end, and the filter kernel.

end-to-end
    For each row (N images of size²): Gaussian-noise images made, blurred with σ = 10,
    variance before and after recorded, blurred images saved as 8-bit BMPs. Timed as whole
    processes, start to exit: ``stats_baseline.py serial`` and ``stats_baseline.py dask``
    (the example's two approaches) against ``snakemake --cores 2`` in a fresh folder on a
    config with one generated dataset (the same images: gaussian_ramp, float32 TIFF) and
    stats on it, once for ``results/stats/noise/summary.tsv`` (the example's outputs:
    variances and BMPs; a stats shard job per shard draws the images in memory, then the
    summary job) and once for the default target (everything: the dataset's TIFFs too,
    plot and job table).
kernel
    Per-image time (best of 7 repeats) of one σ = 10 filter on one thread: skimage.filters.gaussian,
    scipy.ndimage.gaussian_filter, cv2.GaussianBlur (explicit kernel size) and
    pixelflow.pipelines.filters.gaussian, on the same float32 image.
tune (``--tune``, only)
    The choices inside pixelflow.pipelines.filters: per image and kernel radius, OpenCV's separable filter
    against the band-matrix products for several band sizes, and a dense matrix for short axes.

The workflow and the pixelflow code timed are a copy of the committed workflow (``--source``). Before
every timed process the settler (common.Settler) syncs and waits until the disk and the CPUs are
quiet and creating a file costs what it usually does: on this VM a large delete makes file creation
10-20x slower for a while, so the runs' folders are deleted only when a row is finished, never
between two timed runs.

Prints markdown tables and writes them to benchmarks/results/stats.md. Run alone,
e.g. ``python benchmarks/stats.py --repeats 3``.
"""

import argparse
import shutil
import statistics
import sys

from common import (
    BENCH_DIR,
    RESULTS,
    SCRATCH,
    Settler,
    add_source_option,
    log,
    md_table,
    run_process,
    snakemake_command,
    snapshot_workflow,
    use_scripts,
    write_config,
)

STAGE_SCRATCH = SCRATCH / "stats"
BASELINE = BENCH_DIR / "stats_baseline.py"
ROWS = ((10, 2048), (50, 512), (500, 512), (5000, 32))
TARGETS = {1: 1.0, 3: 0.6, 4: 0.6}  # workflow / faster baseline; row 2: baseline + 1 s


def workflow_config(count: int, size: int) -> dict:
    return {
        "seed": 2026,
        "max_threads": 2,
        "montage": {"count": 0},
        "datasets": {
            "noise": {
                "generator": "gaussian_ramp",
                "count": count,
                "shape": [size, size],
                "dtype": "float32",
                "format": "tiff",
                "stack": False,
            }
        },
        "stats": {"datasets": ["noise"], "sigmas": [10], "save_filtered": "bmp"},
    }


def timed(command, cwd, settle: Settler) -> float:
    """Wall seconds of a whole process, after the machine settled; its output is kept in cwd/run.log."""
    settle(STAGE_SCRATCH / "probes")
    return run_process(command, cwd, cwd / "run.log", mode="w")


def run_row(count: int, size: int, snakefile, repeats: int, settle: Settler) -> dict:
    times = {"serial": [], "dask": [], "workflow": [], "workflow (stats outputs)": []}
    folders = []
    for repeat in range(repeats):
        for kind in times:
            folder = STAGE_SCRATCH / f"{count}x{size}-{repeat}-{kind.split()[0]}{'-part' if '(' in kind else ''}"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            if kind in ("serial", "dask"):
                command = [sys.executable, str(BASELINE), kind, str(count), str(size), "out"]
            else:
                write_config(folder, workflow_config(count, size))
                target = "results/stats/noise/summary.tsv" if "(" in kind else "all"
                command = snakemake_command(target, snakefile=snakefile)
                command += ["--configfile", "config.yaml", "--cores", "2", "--quiet"]
            times[kind].append(timed(command, folder, settle))
            print(f"  {count} x {size}² {kind}: {times[kind][-1]:.2f} s", file=sys.stderr, flush=True)
            folders.append(folder)
    for folder in folders:
        shutil.rmtree(folder)
    return times


def fmt(values) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def end_to_end_table(results: dict) -> str:
    rows = []
    for number, times in results.items():
        count, size = ROWS[number - 1]
        best = min(statistics.median(times["serial"]), statistics.median(times["dask"]))
        full = statistics.median(times["workflow"])
        part = statistics.median(times["workflow (stats outputs)"])
        target = f"≤ {TARGETS[number]}" if number in TARGETS else f"≤ {best + 1:.2f} s"
        rows.append(
            [number, f"{count} x {size}²", fmt(times["serial"]), fmt(times["dask"])]
            + [fmt(times["workflow (stats outputs)"]), f"{part / best:.2f}", target]
            + [fmt(times["workflow"]), f"{full / best:.2f}"]
        )
    header = ["row", "N x size", "serial", "dask.delayed", "snakemake --cores 2, example's outputs", "ratio", "target"]
    return md_table([*header, "snakemake --cores 2, everything", "ratio"], rows)


def kernel_table(sizes, sigma: float = 10.0) -> str:
    import timeit

    import cv2
    import numpy as np
    import scipy.ndimage as ndi
    import skimage.filters
    from pixelflow.pipelines import filters
    from pixelflow.runner import limit_native_threads

    limit_native_threads(1)
    radius = filters.kernel_radius(sigma)
    rows = []
    for size in sizes:
        image = np.random.default_rng(0).random((size, size), dtype=np.float32)
        number = max(1, int(2e6 // (size * size)))
        candidates = {
            "skimage": lambda image=image: skimage.filters.gaussian(image, sigma=sigma),
            "scipy": lambda image=image: ndi.gaussian_filter(image, sigma, mode="nearest"),
            "opencv": lambda image=image: cv2.GaussianBlur(
                image, (2 * radius + 1,) * 2, sigma, borderType=cv2.BORDER_REPLICATE
            ),
            "pixelflow": lambda image=image: filters.gaussian(image, sigma, 4.0, "nearest"),
        }
        seconds = {
            name: min(timeit.repeat(call, number=number, repeat=7)) / number for name, call in candidates.items()
        }
        cells = [f"{seconds[name] * 1e3:.3f} ms" for name in candidates]
        rows.append([f"{size}²", *cells, f"{seconds['skimage'] / seconds['pixelflow']:.2f}x"])
    header = ["size", "skimage.filters.gaussian", "scipy.ndimage", "cv2.GaussianBlur"]
    return md_table([*header, "pixelflow.pipelines.filters.gaussian", "speed-up vs skimage"], rows)


def _best_ms(function, args, number: int) -> float:
    import timeit

    return min(timeit.repeat(lambda: function(*args), number=number, repeat=5)) / number * 1e3


def tune_table(sizes=(32, 64, 96, 128, 512, 2048), radii=(2, 4, 6, 8, 12, 20, 40), bands=(16, 32, 64)) -> str:
    import numpy as np
    from pixelflow.pipelines import filters
    from pixelflow.runner import limit_native_threads

    limit_native_threads(1)
    rows = []
    for size in sizes:
        image = np.random.default_rng(0).random((size, size), dtype=np.float32)
        number = max(1, int(1e6 // (size * size)))
        for radius in radii:
            sigma = (radius - 0.25) / 4.0
            assert filters.kernel_radius(sigma) == radius

            cells = [_best_ms(filters._opencv_filter, (image, sigma, 4.0, "nearest"), number)]
            for band in (*bands, size):
                filters.BAND, filters.DENSE_LENGTH = band, 0
                filters.axis_bands.cache_clear()
                cells.append(_best_ms(filters._matrix_filter, (image, sigma, 4.0, "nearest"), number))
            rows.append([f"{size}²", radius, *(f"{cell:.3f} ms" for cell in cells)])
    return md_table(["size", "radius", "OpenCV", *(f"band {band}" for band in bands), "dense"], rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[1, 2, 3, 4], help="which rows (1-4) to run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-kernel", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--tune", action="store_true", help="only the filter's internal choices, printed")
    add_source_option(parser)
    args = parser.parse_args(argv)
    workflow, note = snapshot_workflow(args.source, STAGE_SCRATCH / "workflow")
    use_scripts(workflow)
    log(f"measuring {note}")
    if args.tune:
        print(tune_table())
        return 0
    sections = []
    if not args.skip_kernel:
        table = kernel_table([32, 512, 2048])
        print(table, flush=True)
        sections.append("## Filter kernel, one thread, σ = 10, per image (best of 7 repeats)\n\n" + table)
    if not args.skip_end_to_end:
        settle = Settler(minimum=2.0, maximum=60.0, io_quiet=3.0, cpu_quiet=25.0)
        settle.calibrate(STAGE_SCRATCH / "probes")
        results = {row: run_row(*ROWS[row - 1], workflow / "Snakefile", args.repeats, settle) for row in args.rows}
        shutil.rmtree(STAGE_SCRATCH / "probes", ignore_errors=True)
        table = end_to_end_table(results)
        print(table, flush=True)
        sections.append(f"## End to end, seconds, median [min–max] of {args.repeats}, whole processes\n\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stats.md").write_text("# Stats stage benchmarks\n\n" + "\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
