"""Benchmarks of the mosaics stage, in this process: grey against the classic baseline, colour, search method.

grey
    Target: scikit-image's camera (512x512 grey), 16-px tiles, the 22,852-tile grey library
    (:func:`grey_library`). Baseline, written the way it is usually written: a
    ``multiprocessing.Pool(2)`` whose initializer hands each worker the library once and fits a
    scikit-learn ``NearestNeighbors`` on the raw tile pixels; ``pool.map`` then sends one 16x16
    target tile per task, and each task asks ``kneighbors`` for that one tile's nearest library
    tile. The parent pastes the tiles together. pixelflow: ``pixelflow.mosaics.render.make_mosaic``
    on the library's pooled features (computed once per library by its own rule in the workflow, so
    not timed here), no reuse limit, 2 processes, features and colour correction as listed (grid 8 in
    CIELAB is the configuration compared with the baseline). Timed: features of the target, matching
    and assembly (the phases of the job without file input/output and without the quality figures).
colour
    A colour photomosaic with a reuse limit: astronaut (512x512 RGB), 16-px tiles (1,024 cells), from
    5,000 16-px tiles evenly spaced among the non-overlapping pieces of five other sample photos
    (:func:`colour_library`), ``max_repeats: 1``, 2 processes. Timed: matching + assembly (and,
    separately, target features), as reported by ``make_mosaic``.
matching
    Exact nearest-neighbour search, BLAS distance blocks against scipy's cKDTree, one process: sets
    ``pixelflow.mosaics.matching.KDTREE_MAX_DIMENSIONS`` (the dimension up to which ``method: auto``
    picks the k-d tree). Library rows are the Lab features of the colour sample tiles (all pieces, 4
    rotations) at grids 1, 2, 4 and 8; queries are the astronaut's cells. Times include building the
    index (the tree, or the centred float32 library).

The grey library reproduces the 22,852-tile count of the issue from the scikit-image sample images
shipped inside the package (no download): the non-overlapping 16-px tiles of astronaut (1024), cell
(1394), chelsea (504), coffee (925), logo (961), shepp_logan_phantom (625) and text (280) are 5,713
tiles; in 4 rotations, 22,852. Colour images are converted to grey (ITU-R 601 luma; logo's alpha
composited over white first). Several subsets of the bundled images add up to 5,713; this one keeps
the grey target (camera) out of its own library.

peer
    Whole runs against phomo, an open-source photomosaic tool that also solves the assignment exactly
    (``scipy.optimize.linear_sum_assignment`` on per-pixel distances): 512x512 colour targets
    (astronaut, and retina shrunk to 512x512) from a folder of 5,000 16-px PNG tiles (the colour
    library above written as files), each tile used at most once, 2 cores, no colour correction.
    phomo: ``phomo TARGET TILES -o OUT -S 16 16 -n 1 -j 2`` from its own environment
    (``--peer-python``; it pins Pillow < 11 and OpenCV < 5, so it cannot share ours). pixelflow: a
    fresh ``snakemake --cores 2`` run with default settings (``libraries: {tiles: {path: tiles/*.png}}``,
    ``tile: 16, max_repeats: 1``), the library job included. Runs alternate; both mosaics are scored
    with the same CIEDE2000 and PSNR code.
settings
    Quality and matching time of each feature grid and assignment on the same sets, in this process
    (library features precomputed as the library job does): what the defaults were chosen by.
large
    A 100,000-tile library against a 4096x4096 target in 16-px tiles (65,536 cells), ``max_repeats: 1``,
    optimal assignment: one whole ``snakemake --cores 2`` run; the library comes from 16-px pieces
    (``cut: true``) of large images composed of the colour sample photos at several scales. Reports each
    job's time and peak memory (Snakemake's ``benchmark:`` records).

The pixelflow code timed is a copy of the committed workflow (``--source``). Prints markdown tables;
run alone on the machine: ``python benchmarks/mosaics.py grey --repeats 3``.
"""

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from common import (
    SCRATCH,
    add_source_option,
    benchmark_record,
    fmt_spread,
    log,
    machine,
    md_table,
    remove_tree,
    run_process,
    snakemake_command,
    snapshot_workflow,
    timed,
    use_scripts,
    write_config,
)

TILE = 16
GREY_LIBRARY_IMAGES = ("astronaut", "cell", "chelsea", "coffee", "logo", "shepp_logan_phantom", "text")
COLOUR_LIBRARY_IMAGES = ("chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
COLOUR_VARIANTS = [(1, 0.0), (2, 0.0), (4, 0.0), (8, 0.0), (4, 0.5)]
_worker = {}


def sample(name: str) -> np.ndarray:
    """A scikit-image sample image as 8-bit grey or RGB (alpha over white)."""
    import skimage.data
    from pixelflow.mosaics.tiles import to_uint8_grey_or_rgb

    image = getattr(skimage.data, name)()
    if image.dtype != np.uint8:
        image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return to_uint8_grey_or_rgb(image, name)


def grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def grey_library(tile: int = 16) -> np.ndarray:
    """The 22,852 grey 16-px tiles: 7 sample images cut into pieces, 4 rotations."""
    from pixelflow.mosaics.tiles import cut_tiles, merge_tiles, orient

    parts = [cut_tiles(grey(sample(name)), tile) for name in GREY_LIBRARY_IMAGES]
    return orient(merge_tiles(parts, tile), (0, 90, 180, 270))


def colour_library(count: int = 5000, tile: int = 16) -> np.ndarray:
    """``count`` RGB tiles, evenly spaced among the 16-px pieces of 5 colour sample photos (not astronaut)."""
    from pixelflow.mosaics.tiles import cut_tiles, evenly_spaced, merge_tiles

    tiles = merge_tiles([cut_tiles(sample(name), tile) for name in COLOUR_LIBRARY_IMAGES], tile)
    return np.ascontiguousarray(tiles[evenly_spaced(len(tiles), count)])


def mosaic_spec(grid, correction, max_repeats, key, assignment="greedy") -> dict:
    return {
        "tile": [TILE, TILE],
        "grid": grid,
        "space": "lab",
        "assignment": assignment,
        "max_repeats": max_repeats,
        "min_spacing": 0,
        "colour_correction": correction,
        "scale": [TILE, TILE],
        "key": key,
        "library": "samples",
    }


# grey -----------------------------------------------------------------------------------------------------------------


def baseline_init(library):
    from sklearn.neighbors import NearestNeighbors

    _worker["model"] = NearestNeighbors(n_neighbors=1).fit(library.reshape(len(library), -1).astype(np.float32))


def baseline_match(tile):
    distance, index = _worker["model"].kneighbors(tile.reshape(1, -1).astype(np.float32))
    return int(index[0, 0])


def baseline(target, library, processes=2):
    rows, cols = target.shape[0] // TILE, target.shape[1] // TILE
    tiles = [target[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] for r in range(rows) for c in range(cols)]
    with multiprocessing.Pool(processes, initializer=baseline_init, initargs=(library,)) as pool:
        chosen = pool.map(baseline_match, tiles)
    mosaic = np.zeros((rows * TILE, cols * TILE), np.uint8)
    for n, index in enumerate(chosen):
        r, c = divmod(n, cols)
        mosaic[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = library[index]
    return mosaic


def run_grey(args) -> None:
    from pixelflow.mosaics.render import make_mosaic, quality
    from pixelflow.mosaics.tiles import pooled_features

    library = grey_library(TILE)
    target = sample("camera")
    started = time.perf_counter()
    pooled = {"lab": pooled_features(library, "lab"), "rgb": pooled_features(library, "rgb")}
    index_seconds = time.perf_counter() - started

    base_median, base_all, base_mosaic = timed(lambda: baseline(target, library), args.baseline_repeats)
    base_quality = quality(base_mosaic, target)
    rows = [
        [
            "baseline: Pool(2) + NearestNeighbors, one tile per query (raw pixels)",
            f"{base_median:.3f}",
            "1",
            base_quality["mean_ciede2000"],
            base_quality["psnr_db"],
        ]
    ]
    for grid, correction in ((8, 0.0), (8, 0.25), (4, 0.0), (1, 0.0)):
        inside = []
        for _ in range(args.repeats):
            _, report = make_mosaic(target, library, pooled, mosaic_spec(grid, correction, None, "mosaics.grey"), 2)
            phases = report["seconds"]
            inside.append(phases["features"] + phases["matching"] + phases["assembly"])
        median = statistics.median(inside)
        rows.append(
            [
                f"pixelflow: grid {grid}, Lab, {report['matching_method']}, colour_correction {correction}",
                f"{median:.3f}",
                f"{median / base_median:.4f}",
                report["mean_ciede2000"],
                report["psnr_db"],
            ]
        )
        print(f"  grid {grid} cc {correction}: {', '.join(f'{s:.3f}' for s in inside)} s", file=sys.stderr)
    print(f"## Grey photomosaic: 512x512 camera, {TILE}-px tiles, {len(library):,}-tile library\n")
    print(md_table(["method", "seconds (median)", "× baseline", "mean CIEDE2000", "PSNR dB"], rows))
    print(
        f"\nLibrary features (indexing, once per library and tile size; not in the times above): {index_seconds:.3f} s."
        f"\nBaseline runs: {', '.join(f'{s:.2f}' for s in base_all)} s. pixelflow: median of {args.repeats}."
        f"\nMachine: {machine()}."
    )


# colour ---------------------------------------------------------------------------------------------------------------


def run_colour(args) -> None:
    from pixelflow.mosaics.render import make_mosaic
    from pixelflow.mosaics.tiles import pooled_features

    library = colour_library(5000, TILE)
    pooled = {"lab": pooled_features(library, "lab"), "rgb": pooled_features(library, "rgb")}
    target = sample("astronaut")
    rows = []
    for grid, correction in COLOUR_VARIANTS:
        spec = mosaic_spec(grid, correction, 1, "mosaics.astronaut")
        matching_assembly, features = [], []
        for _ in range(args.repeats):
            _, report = make_mosaic(target, library, pooled, spec, 2)
            seconds = report["seconds"]
            matching_assembly.append(seconds["matching"] + seconds["assembly"])
            features.append(seconds["features"])
        rows.append(
            [
                f"grid {grid} ({grid * grid * 3} values), {report['matching_method']}",
                correction,
                f"{statistics.median(matching_assembly):.3f}",
                f"{statistics.median(features):.3f}",
                report["mean_ciede2000"],
                report["psnr_db"],
                report["distinct_tiles"],
                report["max_uses"],
            ]
        )
    print(f"## Colour photomosaic: 512x512 astronaut, {len(library):,} {TILE}-px tiles, max_repeats 1, 2 processes\n")
    header = ["features (Lab)", "colour_correction", "matching + assembly s", "target features s"]
    print(md_table([*header, "mean CIEDE2000", "PSNR dB", "distinct tiles", "max uses"], rows))
    print(f"\nMedians of {args.repeats} runs. Machine: {machine()}.")


# matching -------------------------------------------------------------------------------------------------------------


def run_matching(args) -> None:
    from pixelflow.mosaics.matching import build_index, nearest
    from pixelflow.mosaics.tiles import cut_tiles, grid_features, orient, pooled_features
    from pixelflow.runner import limit_native_threads

    limit_native_threads(1)
    tiles = orient(colour_library(10**9, 16), (0, 90, 180, 270))
    library_pooled = pooled_features(tiles, "lab")
    rows = []
    for cell_size, tile_count in ((16, 5000), (16, len(tiles)), (8, 5000)):
        subset = library_pooled[np.linspace(0, len(tiles) - 1, tile_count).astype(int)]
        cells = cut_tiles(sample("astronaut"), cell_size)
        cells_pooled = pooled_features(cells, "lab")
        for grid in (1, 2, 4, 8):
            library, queries = grid_features(subset, grid), grid_features(cells_pooled, grid)
            for k in (1, 16):
                times = {}
                for method in ("blas", "kdtree"):

                    def search(m=method, q=queries, lib=library, k=k):
                        return nearest(q, build_index(lib, m), k)

                    times[method], _, _ = timed(search, args.repeats)
                winner = min(times, key=times.get)
                rows.append(
                    [f"{len(queries):,}", f"{len(library):,}", library.shape[1], k]
                    + [f"{times[m] * 1000:.1f}" for m in ("blas", "kdtree")]
                    + [winner]
                )
    print("## Exact k-nearest search, 1 process (milliseconds, median)\n")
    print(md_table(["queries", "library", "dimensions", "k", "BLAS blocks", "cKDTree", "faster"], rows))
    print(f"\nMedians of {args.repeats} runs. Machine: {machine()}.")


# peer, settings, large -------------------------------------------------------------------------------------------


STAGE = SCRATCH / "mosaics"
PEER_TARGETS = ("astronaut", "retina")


def peer_sets(folder: Path) -> dict:
    """Write the tile folder and the 512x512 targets once; {target name: path}."""
    from pixelflow.io.images import write_image

    tiles = folder / "tiles"
    if not (tiles / "04999.png").exists():
        tiles.mkdir(parents=True, exist_ok=True)
        for number, tile in enumerate(colour_library(5000, TILE)):
            write_image(tiles / f"{number:05d}.png", tile)
    targets = {}
    for name in PEER_TARGETS:
        image = sample(name)
        if image.shape[:2] != (512, 512):
            image = cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)
        targets[name] = folder / f"{name}.png"
        write_image(targets[name], image)
    return targets


def score(path: Path, target: Path) -> dict:
    from pixelflow.io.images import read_image
    from pixelflow.mosaics.render import quality

    return quality(read_image(path), read_image(target))


def run_peer_tool(python: str, target: Path, folder: Path) -> tuple[float, Path]:
    output = folder / f"phomo-{target.stem}.png"
    output.unlink(missing_ok=True)
    phomo = str(Path(python).parent / "phomo")
    command = [phomo, str(target), "tiles", "-o", str(output), "-S", str(TILE), str(TILE), "-n", "1", "-j", "2"]
    return run_process(command, folder, folder / "phomo.log", mode="w"), output


def run_workflow(snakefile: Path, folder: Path, config: dict, target: str) -> tuple[float, Path]:
    run = folder / "run"
    remove_tree(run)
    run.mkdir(parents=True)
    write_config(run, config)
    command = snakemake_command(target, "--configfile", "config.yaml", "--cores", "2", "-q", snakefile=snakefile)
    return run_process(command, run, run / "run.log", mode="w"), run


def peer_config(target: Path, **mosaic) -> dict:
    return {
        "datasets": {},
        "max_threads": 2,
        "libraries": {"tiles": {"path": str(target.parent / "tiles" / "*.png")}},
        "mosaics": {"m": {"target": str(target), "library": "tiles", "tile": TILE, "max_repeats": 1, **mosaic}},
    }


def run_peer(args, workflow: Path) -> None:
    folder = STAGE / "peer"
    folder.mkdir(parents=True, exist_ok=True)
    targets = peer_sets(folder)
    rows = []
    for name, target in targets.items():
        peer_times, ours, jobs = [], [], {"mosaic_library": [], "mosaic": []}
        for repeat in range(args.repeats):
            order = ("peer", "ours") if repeat % 2 == 0 else ("ours", "peer")
            for who in order:
                if who == "peer":
                    wall, peer_image = run_peer_tool(args.peer_python, target, folder)
                    peer_times.append(wall)
                else:
                    wall, run = run_workflow(
                        workflow / "Snakefile", folder, peer_config(target), "results/mosaics/m.png"
                    )
                    ours.append(wall)
                    jobs["mosaic_library"].append(
                        benchmark_record(run / "results/benchmarks/mosaics/libraries/tiles-16px.tsv")["s"]
                    )
                    jobs["mosaic"].append(benchmark_record(run / "results/benchmarks/mosaics/m.tsv")["s"])
                log(f"  {name} {who}: {wall:.2f} s")
        report = json.loads((run / "results/mosaics/m.json").read_text())
        peer_score = score(peer_image, target)
        ratio = statistics.median(ours) / statistics.median(peer_times)
        rows.append(
            [
                "phomo 1.2.0 (linear_sum_assignment, per-pixel RGB)",
                name,
                fmt_spread(peer_times),
                "",
                "",
                "1",
                peer_score["mean_ciede2000"],
                peer_score["psnr_db"],
            ]
        )
        rows.append(
            [
                f"pixelflow defaults (grid {report['features']['grid']}, {report['assignment']})",
                name,
                fmt_spread(ours),
                fmt_spread(jobs["mosaic_library"]),
                fmt_spread(jobs["mosaic"]),
                f"{ratio:.2f}",
                report["mean_ciede2000"],
                report["psnr_db"],
            ]
        )
    print("## Photomosaic against phomo: 512x512 targets, 5,000 16-px tile files, each at most once, 2 cores\n")
    header = ["tool", "target", "whole run s", "library job s", "mosaic job s", "× phomo", "mean CIEDE2000", "PSNR dB"]
    print(md_table(header, rows))
    print(f"\nWhole-process wall seconds, median [min–max] of {args.repeats} alternating runs. Machine: {machine()}.")


def run_settings(args, workflow: Path) -> None:
    from pixelflow.io.images import read_image
    from pixelflow.mosaics.render import make_mosaic
    from pixelflow.mosaics.tiles import pooled_features

    library = colour_library(5000, TILE)
    pooled = {"lab": pooled_features(library, "lab"), "rgb": pooled_features(library, "rgb")}
    targets = peer_sets(STAGE / "peer")
    rows = []
    for grid in (2, 4, 8):
        for assignment in ("greedy", "optimal"):
            scores, times = [], []
            for path in targets.values():
                target = read_image(path)
                spec = mosaic_spec(grid, 0.0, 1, "mosaics.m", assignment)
                matching_times = []
                for _ in range(args.repeats):
                    _, report = make_mosaic(target, library, pooled, spec, 2)
                    matching_times.append(report["seconds"]["matching"])
                times.append(statistics.median(matching_times))
                scores.append(report)
            rows.append(
                [f"grid {grid}", assignment]
                + [f"{r['mean_ciede2000']:.3f}" for r in scores]
                + [f"{statistics.mean(r['mean_ciede2000'] for r in scores):.3f}"]
                + [f"{r['psnr_db']:.2f}" for r in scores]
                + [f"{r['total_distance']:.0f}" for r in scores]
                + [f"{max(times):.3f}", scores[0]["distinct_tiles"], scores[0]["max_uses"]]
            )
    names = list(targets)
    header = ["features (Lab)", "assignment", *(f"CIEDE2000 {n}" for n in names), "mean CIEDE2000"]
    header += [*(f"PSNR {n}" for n in names), *(f"total distance {n}" for n in names)]
    header += ["matching s (slower target)", "distinct tiles", "max uses"]
    print("## Settings: 512x512 targets, 5,000 16-px tiles, max_repeats 1, no colour correction, 2 processes\n")
    print(md_table(header, rows))
    print(f"\nMatching: nearest-tile search and assignment, median of {args.repeats}. Machine: {machine()}.")


def large_sources(folder: Path, tiles_wanted: int) -> None:
    """Write large images of the colour sample photos at several scales: 16-px pieces enough for the library."""
    from pixelflow.io.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    pieces, number = 0, 0
    scales = (1.0, 0.8, 1.25, 0.65, 1.5, 0.9, 1.1, 0.7, 1.35, 0.55, 1.2, 0.75)
    while pieces < tiles_wanted:
        scale = scales[number % len(scales)]
        for name in COLOUR_LIBRARY_IMAGES:
            image = sample(name)
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            offset = (number * 5) % TILE
            resized = resized[offset:, offset:]
            write_image(folder / f"{number:03d}-{name}.png", resized)
            pieces += (resized.shape[0] // TILE) * (resized.shape[1] // TILE)
        number += 1


def run_large(args, workflow: Path) -> None:
    from pixelflow.io.images import write_image

    folder = STAGE / "large"
    large_sources(folder / "sources", args.large_tiles)
    target, poster_target = folder / "target.png", folder / "poster-target.png"
    write_image(target, cv2.resize(sample("astronaut"), (4096, 4096), interpolation=cv2.INTER_CUBIC))
    write_image(poster_target, cv2.resize(sample("astronaut"), (1024, 1024), interpolation=cv2.INTER_CUBIC))
    library = {"path": str(folder / "sources" / "*.png"), "cut": True, "max_tiles": args.large_tiles}
    mosaic = {"library": "big", "tile": TILE, "max_repeats": 1, "assignment": args.large_assignment}
    config = {
        "datasets": {},
        "max_threads": 2,
        "libraries": {"big": library},
        "mosaics": {
            "print": {"target": str(target), **mosaic},
            # 64 x 64 cells of 320 x 320 output pixels: a 20,480 x 20,480 print
            "poster": {"target": str(poster_target), **mosaic, "scale": 320},
        },
    }
    rows, notes = [], []
    run = folder / "run"
    if "print" in args.large_parts:
        wall, run = run_workflow(workflow / "Snakefile", folder, config, "results/mosaics/print.png")
        library_record = benchmark_record(run / "results/benchmarks/mosaics/libraries/big-16px.tsv")
        record = benchmark_record(run / "results/benchmarks/mosaics/print.tsv")
        report = json.loads((run / "results/mosaics/print.json").read_text())
        rows += [
            [
                f"library job ({report['library_tiles']:,} tiles)",
                f"{library_record['s']:.1f}",
                f"{library_record['max_rss'] / 1024:.2f}",
                "",
            ],
            [
                f"mosaic job: 4096x4096 target, 65,536 cells, {report['assignment']}",
                f"{record['s']:.1f}",
                f"{record['max_rss'] / 1024:.2f}",
                f"{report['mean_ciede2000']}",
            ],
            ["whole run (both jobs)", f"{wall:.1f}", "", ""],
        ]
        notes.append(f"Mosaic job phases (s): {report['seconds']}; distinct tiles {report['distinct_tiles']}.")
    if "poster" in args.large_parts:
        if "print" not in args.large_parts:
            remove_tree(run)
            run.mkdir(parents=True)
            write_config(run, config)
        command = snakemake_command(
            "results/mosaics/poster.png",
            "--configfile",
            "config.yaml",
            "--cores",
            "2",
            "-q",
            snakefile=workflow / "Snakefile",
        )
        poster_wall = run_process(command, run, run / "poster.log", mode="w")
        record = benchmark_record(run / "results/benchmarks/mosaics/poster.tsv")
        poster = json.loads((run / "results/mosaics/poster.json").read_text())
        height, width = poster["mosaic_shape"][:2]
        size = (run / "results/mosaics/poster.png").stat().st_size / 2**20
        rows += [
            [
                f"poster job: 4,096 cells, {height:,}x{width:,} output "
                f"({height * width * 3 / 2**30:.2f} GiB of pixels, {poster['assignment']})",
                f"{record['s']:.1f}",
                f"{record['max_rss'] / 1024:.2f}",
                f"{poster['mean_ciede2000']}",
            ],
            [
                "poster run" + (" (library reused)" if "print" in args.large_parts else " (library job included)"),
                f"{poster_wall:.1f}",
                "",
                "",
            ],
        ]
        notes.append(f"Poster job phases (s): {poster['seconds']}; PNG {size:.0f} MiB.")
    print(f"## Large: {args.large_tiles:,}-tile library, 16-px cells, max_repeats 1, 2 cores\n")
    print(md_table(["step", "seconds", "peak memory GiB", "mean CIEDE2000"], rows))
    print(f"\n{' '.join(notes)} Machine: {machine()}.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = ("grey", "colour", "matching", "peer", "settings", "large")
    parser.add_argument("mode", choices=modes, help="which benchmark to run")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each variant, median reported (default: 5)")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="grey: runs of the baseline (default: 1)")
    parser.add_argument("--peer-python", default="/tmp/phomo_venv/bin/python", help="peer: python of phomo's env")
    parser.add_argument("--large-tiles", type=int, default=100_000, help="large: library tiles (default: 100000)")
    parser.add_argument(
        "--large-assignment", default="optimal", choices=("optimal", "greedy"), help="large: assignment"
    )
    parser.add_argument(
        "--large-parts", nargs="+", default=["print", "poster"], choices=("print", "poster"), help="large: what to run"
    )
    add_source_option(parser)
    args = parser.parse_args(argv)
    workflow, note = snapshot_workflow(args.source, SCRATCH / "mosaics" / "workflow")
    use_scripts(workflow)
    log(f"measuring {note}")
    runners = {"grey": run_grey, "colour": run_colour, "matching": run_matching}
    runners.update({"peer": run_peer, "settings": run_settings, "large": run_large})
    if args.mode in ("peer", "settings", "large"):
        runners[args.mode](args, workflow)
    else:
        runners[args.mode](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
