"""Benchmark of the maps stage on GIS data: a GeoTIFF reprojected through PROJ, against gdalwarp and gdal_translate.

Input: a 10800x5400 WGS84 GeoTIFF (EPSG:4326, 1/30 degree pixels from -180, 90), uncompressed RGB uint8, the
bundled 720x360 map upscaled with ``cv2.INTER_CUBIC``, written with rasterio once into
``benchmarks/scratch/maps_gis/`` and reused.

Cases (bilinear, uncompressed GeoTIFF out, error threshold 0.125, ``--cores 2``, ``max_threads: 2``)
    *mollweide*: ``crs: ESRI:54009``, 10800x5400, the whole globe (pixelflow's footprint); gdalwarp
    ``-t_srs ESRI:54009 -ts 10800 5400``, plus ``-te`` with the bounds of pixelflow's output when gdalwarp's
    own extent differs, so that both write the same grid. *laea*: ``crs: EPSG:3035``, bounds [2500000,
    1350000, 7500000, 5500000], 1000 m pixels; gdalwarp the same ``-te`` and ``-tr``. *polar*: ``crs:
    EPSG:3413``, +-4000 km, 2000 m pixels. *average*: to EPSG:4326 at 8/30 degree pixels (1350x675) with
    ``interpolation: average``, against ``gdalwarp -r average``. pixelflow writes RGBA for every ``crs``
    output (alpha 0 where a pixel has no source), so gdalwarp is given ``-dstalpha`` to write it too.
Times
    *pixelflow*: a ``snakemake --cores 2`` run of the map's image in a fresh folder, on a config of that one
    map and one projection, with a copy of the workflow (``--source``, here by default ``worktree``: the
    working tree with its uncommitted changes). The figure is the reprojection job's wall time ``s`` from its
    ``benchmark:`` file (interpreter start-up, reading and writing included; Snakemake's planning not), with
    its max_rss and max_pss (sampled every 0.5 s); the whole run's wall time is shown beside. *gdalwarp*:
    ``gdalwarp -q -overwrite -r bilinear -wo NUM_THREADS=2 -co COMPRESS=NONE -dstalpha`` to a GTiff, the
    whole command's wall time. Ratio: job seconds / gdalwarp seconds. Memory: max_pss / the output file's bytes.
COG writing
    ``pixelflow.io.geotiff.write_geotiff(path, pixels, crs, transform, compression="deflate", cog=True,
    threads=2)`` on the 10800x5400x3 array, timed in this process around the call alone (the array already in
    memory), against ``gdal_translate -of COG -co COMPRESS=DEFLATE -co NUM_THREADS=2`` of the input file (the
    same array as an uncompressed GeoTIFF), whole command, and the same with the options pixelflow passes
    (``-co PREDICTOR=STANDARD -co OVERVIEW_RESAMPLING=AVERAGE``). Wall times and file sizes.
Quality (from one untimed first run of each case, which also warms the file caches)
    Pixels: mean absolute difference per channel, in levels of 255, between pixelflow's and gdalwarp's
    outputs over the pixels both mark valid (alpha 255) and at least 2 pixels from any invalid one (the valid
    mask eroded with a 5x5 kernel). Positions: for 10,000 random output pixel centres, the source (column,
    row) of pixelflow's inverse mapping (``interpolated_coordinates`` over every tile, on a Mapping built as
    the job builds it: the grid from the job's JSON, source geometry and PROJ locator from planning's view of
    the file) against pyproj's float64 transform of the same centres from the config's CRS to the file's;
    the error is the larger of the column miss (modulo the source width) and the row miss, in source pixels.

Before every timed process (and the in-process COG call) the settler (common.Settler) syncs and waits until
the disk and the CPUs are quiet, at most ``--settle-max`` seconds. Each repeat runs every case, pixelflow
first, the order reversed every other repeat; tables give median [min–max] of ``--repeats``. Prints markdown
tables and writes them to benchmarks/results/maps_gis.md. Run alone: ``python benchmarks/maps_gis.py``.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
from common import (
    REPO,
    RESULTS,
    SCRATCH,
    Settler,
    add_source_option,
    benchmark_record,
    fmt_spread,
    log,
    machine,
    md_table,
    median_of,
    remove_tree,
    run_process,
    snakemake_command,
    snapshot_workflow,
    tail,
    use_scripts,
    write_config,
)

STAGE = SCRATCH / "maps_gis"
MAP_NAME = "resources/natural_earth_shaded_relief_720x360.png"
WIDTH, HEIGHT = 10800, 5400
SETTINGS = {"format": "tif", "compression": "none", "interpolation": "bilinear", "error_threshold": 0.125}
COARSE = 8 / 30  # degrees: 8 source pixels
# name: (projection entry, target ratio); gdalwarp gets the same -te and -tr, or -ts (:func:`gdalwarp_command`)
CASES = {
    "mollweide": ({"crs": "ESRI:54009", "width": WIDTH, "height": HEIGHT}, 0.33),
    "laea": ({"crs": "EPSG:3035", "bounds": [2500000, 1350000, 7500000, 5500000], "resolution": 1000}, 1.0),
    "polar": ({"crs": "EPSG:3413", "bounds": [-4000000, -4000000, 4000000, 4000000], "resolution": 2000}, 1.0),
    "average": ({"crs": "EPSG:4326", "bounds": [-180, -90, 180, 90], "resolution": COARSE}, None),
}
BILINEAR = ("mollweide", "laea", "polar")
GDALWARP = ["gdalwarp", "-q", "-overwrite", "-wo", "NUM_THREADS=2", "-co", "COMPRESS=NONE", "-dstalpha"]
TRANSLATE = ["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "NUM_THREADS=2"]
COG_TOOLS = {"gdal_translate": [], "matched": ["-co", "PREDICTOR=STANDARD", "-co", "OVERVIEW_RESAMPLING=AVERAGE"]}
COG_LABELS = {
    "pixelflow": "pixelflow write_geotiff(cog=True, compression=deflate, threads=2), in process, array in memory",
    "gdal_translate": "gdal_translate -of COG -co COMPRESS=DEFLATE -co NUM_THREADS=2",
    "matched": "the same with -co PREDICTOR=STANDARD -co OVERVIEW_RESAMPLING=AVERAGE (pixelflow's options)",
}
MEMORY_TARGET, PIXEL_TARGET, POSITION_TARGET = 3.0, 1.0, 0.125
MiB = 1 << 20


def make_input(folder: Path) -> Path:
    """The 10800x5400 EPSG:4326 GeoTIFF, made once (under a temporary name, then renamed)."""
    path = folder / f"world_{WIDTH}x{HEIGHT}_epsg4326.tif"
    if not path.exists():
        image = cv2.cvtColor(cv2.imread(str(REPO / MAP_NAME)), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        profile = {"driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 3, "dtype": "uint8"}
        transform = rasterio.transform.from_origin(-180, 90, 1 / 30, 1 / 30)
        partial = path.with_suffix(".partial.tif")
        with rasterio.open(partial, "w", **profile, crs="EPSG:4326", transform=transform, photometric="RGB") as out:
            out.write(image.transpose(2, 0, 1))
        partial.rename(path)
    return path


def interpolation(name: str) -> str:
    return "average" if name == "average" else "bilinear"


def run_pixelflow(name: str, folder: Path, snakefile: Path, input_path: Path, settle=None) -> dict:
    """One snakemake run of the case's image in a fresh ``folder``: the job's benchmark record and the run's wall."""
    remove_tree(folder)
    folder.mkdir(parents=True)
    config = {
        "datasets": {},
        "max_threads": 2,
        "maps": {"big": {"path": str(input_path)}},
        "projections": {name: CASES[name][0]},
        "reprojection": {**SETTINGS, "interpolation": interpolation(name)},
    }
    write_config(folder, config)
    image = f"results/maps/big/{name}.tif"
    command = snakemake_command(image, "--configfile", "config.yaml", "--cores", "2", "-q", snakefile=snakefile)
    if settle is not None:
        settle(STAGE / "probes")
    try:
        wall = run_process(command, folder, folder / "run.log", mode="w")
    except RuntimeError as error:
        job_log = folder / f"results/logs/maps/big/{name}.log"
        raise RuntimeError(f"{error}\n\njob log {job_log}:\n{tail(job_log, 80)}") from None
    record = benchmark_record(folder / f"results/benchmarks/maps/big/{name}.tsv")
    return {**record, "wall": wall, "bytes": (folder / image).stat().st_size, "image": folder / image}


def gdalwarp_command(name: str, input_path: Path, output: Path, extra: list) -> list:
    """gdalwarp to the case's grid: -te and -tr as bounds and resolution, or -ts as width and height (+ extra)."""
    projection = CASES[name][0]
    if "bounds" in projection:
        grid = ["-te", *(str(value) for value in projection["bounds"]), "-tr", *[repr(projection["resolution"])] * 2]
    else:
        grid = ["-ts", str(projection["width"]), str(projection["height"])]
    method = ["-r", interpolation(name), "-t_srs", projection["crs"]]
    return [*GDALWARP, *method, *grid, *extra, str(input_path), str(output)]


def timed_command(command: list, output: Path, settle=None) -> float:
    """Wall seconds of a whole command writing ``output`` (deleted first); its messages go to ``output``.log."""
    output.unlink(missing_ok=True)
    if settle is not None:
        settle(STAGE / "probes")
    return run_process(command, output.parent, output.with_suffix(".log"), mode="w")


def write_cog(pixels, crs, transform, path: Path, settle=None) -> float:
    """Wall seconds of pixelflow's COG writer on an array in memory, in this process."""
    from pixelflow.io.geotiff import write_geotiff

    path.unlink(missing_ok=True)
    if settle is not None:
        settle(STAGE / "probes")
    started = time.perf_counter()
    write_geotiff(path, pixels, crs, transform, compression="deflate", cog=True, threads=2)
    return time.perf_counter() - started


def grid_of(path: Path) -> tuple:
    """(width, height, GDAL transform) of a raster file."""
    with rasterio.open(path) as dataset:
        return dataset.width, dataset.height, dataset.transform.to_gdal()


def same_grid(a: tuple, b: tuple) -> bool:
    """Same size, and transforms within 1e-6 of a pixel."""
    tolerance = 1e-6 * max(abs(a[2][1]), abs(a[2][5]))
    return a[:2] == b[:2] and all(abs(x - y) <= tolerance for x, y in zip(a[2], b[2], strict=True))


def bounds_of(grid: tuple) -> tuple:
    width, height, t = grid
    return t[0], t[3] + height * t[5], t[0] + width * t[1], t[3]


def describe_grid(grid: tuple) -> str:
    return f"{grid[0]}x{grid[1]}, [" + ", ".join(f"{value:.3f}" for value in bounds_of(grid)) + "]"


def pixel_difference(ours: Path, theirs: Path) -> dict:
    """Alpha agreement, and per-channel |difference| over pixels both mark valid, 2 px from any invalid one."""
    with rasterio.open(ours) as a, rasterio.open(theirs) as b:
        first, second = a.read(), b.read()
    valid_a, valid_b = first[-1] == 255, second[-1] == 255
    core = cv2.erode((valid_a & valid_b).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    differences = [cv2.absdiff(first[channel], second[channel])[core] for channel in range(3)]
    return {
        "bands": f"{first.shape[0]} / {second.shape[0]}",
        "alpha_differs": int(np.count_nonzero(valid_a != valid_b)),
        "partial_alpha": int(np.count_nonzero((second[-1] > 0) & (second[-1] < 255))),
        "compared": int(core.sum()),
        "means": [float(difference.mean()) for difference in differences],
        "max": max(int(difference.max()) for difference in differences),
    }


def position_errors(name: str, run_folder: Path, input_path: Path, samples: int = 10_000) -> dict:
    """pixelflow's interpolated source positions of random output pixel centres against pyproj (float64)."""
    from pixelflow.maps.crs import Locator, crs_text, parse_crs
    from pixelflow.maps.georef import raster_geometry
    from pixelflow.maps.inverse_map import Mapping, interpolated_coordinates
    from pixelflow.maps.reproject import plan_tiles
    from pixelflow.planning.maps import georeferencing
    from pyproj import CRS, Transformer

    projection = CASES[name][0]
    facts = json.loads((run_folder / f"results/maps/big/{name}.json").read_text())
    transform, width, height = tuple(facts["transform"]), facts["width"], facts["height"]
    source = georeferencing({"path": str(input_path)}, input_path, ["maps", "big"])
    geometry = raster_geometry(source["width"], source["height"], source["transform"], source["crs"], str(input_path))
    locate = Locator(crs_text(parse_crs(projection["crs"], "crs")), geometry.crs)  # the job's target CRS text
    mapping = Mapping(projection, transform, width, height, geometry, SETTINGS["error_threshold"], 8, locate)
    rng = np.random.default_rng(2026)
    rows, cols = rng.integers(0, height, samples), rng.integers(0, width, samples)
    got = np.full((samples, 2), np.nan)
    for row0, row1, col0, col1 in plan_tiles(height, width, mapping.grid_step):
        inside = (rows >= row0) & (rows < row1) & (cols >= col0) & (cols < col1)
        if inside.any():
            coords, _ = interpolated_coordinates(mapping, row0, row1, col0, col1)
            got[inside] = coords[rows[inside] - row0, cols[inside] - col0]
    with rasterio.open(input_path) as dataset:
        source_crs, s = CRS.from_wkt(dataset.crs.to_wkt()), dataset.transform.to_gdal()
    exact = Transformer.from_crs(CRS.from_user_input(projection["crs"]), source_crs, always_xy=True)
    x, y = transform[0] + (cols + 0.5) * transform[1], transform[3] + (rows + 0.5) * transform[5]
    lon, lat = (np.asarray(value) for value in exact.transform(x, y, errcheck=False))
    column, row = (lon - s[0]) / s[1] - 0.5, (lat - s[3]) / s[5] - 0.5
    ours, theirs = np.isfinite(got).all(axis=1), np.isfinite(column) & np.isfinite(row)
    both = ours & theirs
    miss_x = np.abs(got[both, 0] - column[both]) % source["width"]
    error = np.maximum(np.minimum(miss_x, source["width"] - miss_x), np.abs(got[both, 1] - row[both]))
    return {
        "compared": int(both.sum()),
        "validity_differs": int(np.count_nonzero(ours != theirs)),
        "max": float(error.max()),
        "p999": float(np.percentile(error, 99.9)),
    }


def first_runs(warps: list, cog: bool, snakefile: Path, input_path: Path) -> dict:
    """Untimed first runs: the grids, the gdalwarp options giving pixelflow's grid, quality, the COGs' sizes."""
    first = STAGE / "first"
    found = {"extra": {name: [] for name in CASES}, "grids": {}, "pixels": {}, "positions": {}, "sizes": {}}
    for name in warps:
        log(f"first (untimed) run of {name}")
        ours = run_pixelflow(name, first / name, snakefile, input_path)
        theirs = first / f"{name}-gdalwarp.tif"
        timed_command(gdalwarp_command(name, input_path, theirs, []), theirs)
        grid, own = grid_of(ours["image"]), grid_of(theirs)
        if not same_grid(grid, own):  # gdalwarp chose another extent: give it pixelflow's
            found["extra"][name] = ["-te", *(repr(value) for value in bounds_of(grid))]
            timed_command(gdalwarp_command(name, input_path, theirs, found["extra"][name]), theirs)
        found["grids"][name] = (grid, own, grid_of(theirs))
        found["pixels"][name] = pixel_difference(ours["image"], theirs)
        if name in BILINEAR:
            found["positions"][name] = position_errors(name, first / name, input_path)
    if cog:
        log("first (untimed) COG writes")
        with rasterio.open(input_path) as dataset:
            array = np.ascontiguousarray(dataset.read().transpose(1, 2, 0))
            found["cog"] = (array, dataset.crs.to_wkt(), dataset.transform.to_gdal())
        write_cog(*found["cog"], first / "cog-pixelflow.tif")
        for label, options in COG_TOOLS.items():
            output = first / f"cog-{label}.tif"
            timed_command([*TRANSLATE, *options, str(input_path), str(output)], output)
        found["sizes"] = {label: (first / f"cog-{label}.tif").stat().st_size for label in COG_LABELS}
    return found


def timed_runs(args, warps, snakefile, input_path, first, settle) -> dict:
    """``{(case, method): [figure of each repeat]}``: every case per repeat, the order reversed every other repeat."""
    runs = STAGE / "runs"
    remove_tree(runs)
    runs.mkdir(parents=True)
    results = {}

    def steps(name, repeat):
        if name == "cog":
            output = runs / "cog.tif"
            planned = [("pixelflow", lambda: write_cog(*first["cog"], output, settle))]
            for label, options in COG_TOOLS.items():
                command = [*TRANSLATE, *options, str(input_path), str(output)]
                planned.append((label, lambda command=command: timed_command(command, output, settle)))
            return planned
        folder, output = runs / f"{name}-{repeat}", runs / f"{name}-gdalwarp.tif"
        command = gdalwarp_command(name, input_path, output, first["extra"][name])
        return [
            ("pixelflow", lambda: run_pixelflow(name, folder, snakefile, input_path, settle)),
            ("gdalwarp", lambda: timed_command(command, output, settle)),
        ]

    for repeat in range(args.repeats):
        for name in [*warps, *(["cog"] if "cog" in args.cases else [])]:
            planned = steps(name, repeat)
            for method, step in planned if repeat % 2 == 0 else planned[::-1]:
                results.setdefault((name, method), []).append(step())
            for path in runs.glob("*.tif"):
                path.unlink()
            remove_tree(runs / f"{name}-{repeat}")
            log(f"repeat {repeat + 1}/{args.repeats}: {name} done")
    remove_tree(runs)
    return results


def met(value, target) -> str:
    return "—" if value is None or target is None else ("yes" if value <= target else "no")


def report(args, warps, results, first) -> list:
    """The markdown sections: (title, table)."""
    sections, repeats = [], f"median [min–max] of {args.repeats} interleaved repeats"
    timing, memory, grids, pixels, positions = [], [], [], [], []
    for name in warps:
        runs, gdal, target = results[name, "pixelflow"], results[name, "gdalwarp"], CASES[name][1]
        job = [run["s"] for run in runs]
        ratio = median_of(job) / median_of(gdal)
        paired = [ours / theirs for ours, theirs in zip(job, gdal, strict=True)]
        ratio_text = f"{ratio:.2f}" + (f" [{min(paired):.2f}–{max(paired):.2f}]" if len(paired) > 1 else "")
        grid, own, used = first["grids"][name]
        timing.append([name, f"{grid[0]}x{grid[1]}", fmt_spread(gdal), fmt_spread(job), ratio_text])
        timing[-1] += [f"≤ {target}" if target else "—", met(ratio, target), fmt_spread([r["wall"] for r in runs])]
        pss = median_of([run["max_pss"] for run in runs])
        share = None if pss is None else pss * MiB / runs[-1]["bytes"]
        limit = MEMORY_TARGET if name in BILINEAR else None
        memory.append([name, f"{runs[-1]['bytes'] / MiB:.1f}", fmt_spread([run["max_rss"] for run in runs], 0)])
        memory[-1] += [fmt_spread([run["max_pss"] for run in runs], 0), "—" if share is None else f"{share:.2f}x"]
        memory[-1] += [f"≤ {limit}x" if limit else "—", met(share, limit)]
        given = "-te from pixelflow's output" if first["extra"][name] else "its own options"
        grids.append([name, describe_grid(grid), describe_grid(own), given, "yes" if same_grid(grid, used) else "NO"])
        q = first["pixels"][name]
        means = " / ".join(f"{value:.3f}" for value in q["means"])
        pixels.append([name, q["bands"], q["alpha_differs"], q["partial_alpha"], q["compared"], means, q["max"]])
        pixels[-1] += [f"≤ {PIXEL_TARGET}", met(max(q["means"]), PIXEL_TARGET)]
        if name in first["positions"]:
            p = first["positions"][name]
            positions.append([name, p["compared"], p["validity_differs"], f"{p['max']:.4f}", f"{p['p999']:.4f}"])
            positions[-1] += [f"≤ {POSITION_TARGET}", met(p["max"], POSITION_TARGET)]
    if warps:
        header = ["case", "output", "gdalwarp (s)", "pixelflow job (s)", "ratio [paired min–max]", "target", "met?"]
        sections.append((f"Reprojection time, {repeats}", md_table([*header, "whole snakemake run (s)"], timing)))
        header = ["case", "output file (MiB)", "job max_rss (MiB)", "job max_pss (MiB)", "max_pss / output"]
        sections.append((f"Job memory, {repeats}", md_table([*header, "target", "met?"], memory)))
        header = ["case", "pixelflow grid [xmin, ymin, xmax, ymax]", "gdalwarp's own grid", "gdalwarp given"]
        sections.append(("Output grids", md_table([*header, "same grid"], grids)))
        header = ["case", "bands pixelflow / gdalwarp", "alpha 255 in one only (px)", "gdalwarp alpha 1-254 (px)"]
        header += ["compared (px)", "mean abs diff R / G / B", "max abs diff", "target", "met?"]
        sections.append(("Pixels against gdalwarp (levels of 255; valid, 2 px inside)", md_table(header, pixels)))
    if positions:
        header = ["case", "compared (of 10,000)", "valid in one only", "max error (source px)", "99.9 %"]
        title = "Source positions of random output pixel centres against pyproj (float64)"
        sections.append((title, md_table([*header, "target", "met?"], positions)))
    if first["sizes"]:
        base, rows = median_of(results["cog", "gdal_translate"]), []
        for label, words in COG_LABELS.items():
            values = results["cog", label]
            size = f"{first['sizes'][label] / MiB:.1f}"
            rows.append([words, fmt_spread(values), f"{median_of(values) / base:.2f}", size])
        table = md_table(["method", "wall (s)", "ratio to gdal_translate", "file size (MiB)"], rows)
        sections.append((f"COG writing, 10800x5400 RGB, deflate, {repeats}", table))
    return sections


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=(*CASES, "cog"), default=[*CASES, "cog"])
    parser.add_argument("--settle-max", type=float, default=60.0, help="longest wait for a quiet machine (s)")
    add_source_option(parser, default="worktree")
    args = parser.parse_args(argv)
    (STAGE / "first").mkdir(parents=True, exist_ok=True)
    workflow, note = snapshot_workflow(args.source, STAGE / "workflow")
    use_scripts(workflow)
    log(f"measuring {note}")
    snakefile, input_path = workflow / "Snakefile", make_input(STAGE)
    warps = [name for name in CASES if name in args.cases]
    settle = Settler(minimum=2.0, maximum=args.settle_max, io_quiet=3.0, cpu_quiet=25.0)
    settle.calibrate(STAGE / "probes")
    first = first_runs(warps, "cog" in args.cases, snakefile, input_path)
    results = timed_runs(args, warps, snakefile, input_path, first, settle)
    remove_tree(STAGE / "probes")
    command = shlex.join(["python", "benchmarks/maps_gis.py", *(sys.argv[1:] if argv is None else argv)])
    from pyproj import proj_version_str

    tools = subprocess.run(["gdalwarp", "--version"], capture_output=True, text=True).stdout.strip()
    versions = f"rasterio {rasterio.__version__} with GDAL {rasterio.__gdal_version__}, PROJ {proj_version_str}"
    intro = f"`{command}`: {note}; {machine()}; gdalwarp, gdal_translate: {tools}; pixelflow: {versions}."
    text = "\n\n".join(f"## {title}\n\n{table}" for title, table in report(args, warps, results, first))
    print(f"{intro}\n\n{text}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "maps_gis.md").write_text(f"# Maps for GIS data: pixelflow against gdalwarp\n\n{intro}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
