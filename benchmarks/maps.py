"""Benchmarks of the maps stage: the classic per-pixel pool, and gdalwarp, against pixelflow.

classic: 2048x1024 transverse Mercator of the bundled world map
    Each way timed as wall clock, median of ``--repeats`` runs (the last two also with the
    inverse-map cache on). *classic*: the hand-written demo: a Python function computes, for one
    output pixel, the source pixel it comes from (``math`` module, nearest neighbour); a
    ``ProcessPoolExecutor`` with 2 workers maps a row function over the rows. *reprojection*:
    ``pixelflow.maps.reproject.reproject_file`` on the same map and size (up to 2 threads; at 2 Mpx
    it runs on one, see ``PIXELS_PER_THREAD``; bilinear, 0.125 px error threshold), written as an
    uncompressed TIFF, in this process after one warm-up call (no interpreter start-up or imports);
    cached: the same, reading the coarse grid from an inverse-map file written once beforehand
    (``pixelflow.maps.inverse_cache``). *workflow*: a whole ``snakemake --cores 2`` run (engine
    start-up, planning, the job's interpreter, PNG output) in a fresh folder, of a config with only
    this map and projection; also the reprojection job's own wall time from its ``benchmark:`` file;
    cached: ``cache_inverse: true``, which adds a ``map_inverse`` job (its time from its own file).
gdalwarp: 10800x5400 plate carree -> 10800x5400 transverse Mercator, bilinear, uncompressed TIFF
    The input is the bundled 720x360 map upscaled (bicubic) to 10800x5400 and saved as an
    uncompressed TIFF with a world file (made once in ``--scratch``). *pixelflow*: a ``snakemake
    --cores 2`` run of a config with that map and a ``transverse_mercator`` projection 10800 wide
    (format tiff, bilinear, error threshold 0.125 px). The figure is the reprojection job's wall time
    from its ``benchmark:`` file (interpreter start-up, reading and writing included; Snakemake's own
    planning not), and its memory: max_rss (the job's process tree, shared pages counted once per
    process that maps them) and max_pss (shared pages split between the processes: the memory the
    job really holds). Run twice: with ``cache_inverse: false`` (the default: the job computes its
    inverse map) and ``true`` (a ``map_inverse`` job computes it first, timed from its own benchmark
    file, and the job reads it). *gdalwarp*: ``gdalwarp -r bilinear -wo NUM_THREADS=2`` from the same
    file to the same sphere, extent and pixel size (+proj=tmerc; gdalwarp writes north up, so its
    image is 5400 wide and 10800 high where pixelflow's pole-shift layout turns the same grid a
    quarter turn), wall time of the whole command.

Both print markdown tables (medians of ``--repeats`` interleaved runs). Run alone on the machine:
``python benchmarks/maps.py classic --repeats 9``, ``python benchmarks/maps.py gdalwarp --repeats 3``.
"""

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
from common import (
    SCRATCH,
    add_source_option,
    benchmark_record,
    log,
    md_table,
    seconds,
    snakemake_command,
    snapshot_workflow,
    use_scripts,
    write_config,
)

MAP_NAME = "resources/natural_earth_shaded_relief_720x360.png"
WIDTH, HEIGHT = 2048, 1024  # classic
BIG_WIDTH, BIG_HEIGHT = 10800, 5400  # gdalwarp
RADIUS = 6371000

source = cv2.imread(str(Path(__file__).resolve().parents[1] / MAP_NAME))  # a global the classic workers inherit


# classic --------------------------------------------------------------------------------------------------------------


def source_pixel(col, row):
    """The source (column, row) for output pixel (col, row) of the pole-shift transverse Mercator map."""
    step = 2 * math.pi / WIDTH  # radians per output pixel on the unit sphere
    northing = -math.pi + (col + 0.5) * step
    easting = -HEIGHT * step / 2 + (row + 0.5) * step
    lat = math.asin(max(-1.0, min(1.0, math.sin(northing) / math.cosh(easting))))
    lon = math.atan2(math.sinh(easting), math.cos(northing))
    src_h, src_w = source.shape[:2]
    x = int((lon + math.pi) / (2 * math.pi) * src_w) % src_w
    y = min(src_h - 1, int((math.pi / 2 - lat) / math.pi * src_h))
    return x, y


def render_row(row):
    """One output row, pixel by pixel."""
    out = []
    for col in range(WIDTH):
        x, y = source_pixel(col, row)
        out.append(source[y, x])
    return out


def classic(processes=2):
    with ProcessPoolExecutor(processes) as pool:
        rows = list(pool.map(render_row, range(HEIGHT)))
    return rows


def reprojection(folder, map_path, inverse=None):
    from pixelflow.maps.reproject import reproject_file

    projection = {"kind": "transverse_mercator"}
    reproject_file(
        map_path, Path(folder) / "pole_shift.tif", {}, {**projection, "width": WIDTH}, threads=2, inverse_path=inverse
    )


def write_cache(folder, map_path) -> Path:
    """The inverse map of this map and projection at the defaults, as the map_inverse job writes it."""
    from pixelflow.io.headers import image_size
    from pixelflow.maps.inverse_cache import inverse_spec, write_inverse_map
    from pixelflow.planning.maps import source_grid

    grid = source_grid({}, *image_size(map_path))
    spec = inverse_spec({"kind": "transverse_mercator"}, WIDTH, HEIGHT, grid, 0.125, 8)
    path = Path(folder) / "pole_shift.inv"
    write_inverse_map(path, spec)
    return path


def workflow(folder, snakefile, map_path, cache=False, jobs=None):
    """A whole run; the jobs' wall times from their benchmark files are appended to ``jobs``."""
    folder = Path(folder)
    config = {
        "datasets": {},
        "maps": {"world": {"path": str(map_path)}},
        "projections": {"pole_shift": {"kind": "transverse_mercator", "width": WIDTH}},
        "reprojection": {"cache_inverse": cache},
    }
    write_config(folder, config)
    command = snakemake_command("--configfile", "config.yaml", "--cores", "2", "-q", snakefile=snakefile)
    subprocess.run(command, cwd=folder, check=True, capture_output=True)
    if jobs is not None:
        records = folder.glob("results/benchmarks/maps/*/*.tsv")
        jobs.append({path.parent.name: benchmark_record(path)["s"] for path in records})


def run_classic(args, workflow_dir: Path) -> None:
    map_path = workflow_dir / MAP_NAME
    snakefile = workflow_dir / "Snakefile"
    labels = {
        "classic": "classic per-pixel ProcessPoolExecutor",
        "reprojection": "pixelflow reproject_file (in process)",
        "reprojection_cached": "pixelflow reproject_file, coarse grid from a cached inverse map (in process)",
        "workflow": "whole `snakemake --cores 2` run",
        "workflow_cached": "whole `snakemake --cores 2` run, `cache_inverse: true`",
    }
    times = {name: [] for name in labels}
    jobs = {"workflow": [], "workflow_cached": []}
    cache_folder = tempfile.mkdtemp(dir=args.scratch)
    inverse = write_cache(cache_folder, map_path)
    reprojection(cache_folder, map_path)  # imports OpenCV and pixelflow once: not part of the reprojection's time
    for _ in range(args.repeats):
        times["classic"].append(seconds(classic))
        for name, function, options in (
            ("reprojection", reprojection, {"map_path": map_path}),
            ("reprojection_cached", reprojection, {"map_path": map_path, "inverse": inverse}),
            ("workflow", workflow, {"snakefile": snakefile, "map_path": map_path, "jobs": jobs["workflow"]}),
            (
                "workflow_cached",
                workflow,
                {"snakefile": snakefile, "map_path": map_path, "cache": True, "jobs": jobs["workflow_cached"]},
            ),
        ):
            folder = tempfile.mkdtemp(dir=args.scratch)
            times[name].append(seconds(function, folder, **options))
            shutil.rmtree(folder)
    shutil.rmtree(cache_folder)
    base = statistics.median(times["classic"])
    print(f"2048x1024 transverse Mercator of the bundled 720x360 map, 2 cores, median of {args.repeats}\n")
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        # Each repetition runs every method back to back: the ratio within one
        # repetition is less exposed to the machine's drift than the medians.
        paired = [classic / value for classic, value in zip(times["classic"], values, strict=True)]
        rows.append(
            [
                labels[name],
                f"{median:.3f} [{min(values):.3f}–{max(values):.3f}]",
                f"{base / median:.3g}x",
                f"{statistics.median(paired):.3g}x [{min(paired):.3g}–{max(paired):.3g}]",
            ]
        )
    header = ["method", "wall time (s) [min–max]", "speed-up vs classic", "paired speed-up [min–max]"]
    print(md_table(header, rows))
    print("\nJobs of the whole runs, wall time from their benchmark files (s):\n")
    rows = []
    for name, runs in jobs.items():
        reproject = statistics.median(run["world"] for run in runs)
        inverse_times = [run["inverse"] for run in runs if "inverse" in run]
        rows.append(
            [labels[name], f"{reproject:.3f}", f"{statistics.median(inverse_times):.3f}" if inverse_times else "-"]
        )
    print(md_table(["run", "map_reproject job", "map_inverse job"], rows))


# gdalwarp -------------------------------------------------------------------------------------------------------------


def make_input(folder: Path, map_path: Path) -> Path:
    """The upscaled input TIFF and its world file, made once."""
    path = folder / f"world_{BIG_WIDTH}x{BIG_HEIGHT}.tif"
    if not path.exists():
        image = cv2.resize(cv2.imread(str(map_path)), (BIG_WIDTH, BIG_HEIGHT), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(path), image, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    if not path.with_suffix(".tfw").exists():
        step = 360 / BIG_WIDTH
        values = [step, 0, 0, -step, -180 + step / 2, 90 - step / 2]
        path.with_suffix(".tfw").write_text("".join(f"{value:.15f}\n" for value in values))
    return path


def run_gdalwarp(input_path: Path, folder: Path) -> float:
    target = folder / "gdalwarp.tif"
    target.unlink(missing_ok=True)
    half_width, half_height = math.pi * RADIUS / 2, math.pi * RADIUS
    command = [
        "gdalwarp", "-q", "-overwrite",
        "-s_srs", f"+proj=longlat +R={RADIUS} +no_defs",
        "-t_srs", f"+proj=tmerc +lon_0=0 +R={RADIUS} +units=m +no_defs",
        "-te", str(-half_width), str(-half_height), str(half_width), str(half_height),
        "-ts", str(BIG_HEIGHT), str(BIG_WIDTH),
        "-r", "bilinear", "-wo", "NUM_THREADS=2", "-co", "COMPRESS=NONE",
        str(input_path), str(target),
    ]  # fmt: skip
    elapsed = seconds(subprocess.run, command, check=True)
    target.unlink()
    return elapsed


def run_pixelflow(input_path: Path, folder: Path, snakefile: Path, cache: bool) -> dict:
    """The reprojection job's figures and log, and with ``cache`` the inverse-map job's under "inverse"."""
    workdir = folder / "workflow-run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    config = {
        "datasets": {},
        "maps": {"big": {"path": str(input_path)}},
        "projections": {"pole_shift": {"kind": "transverse_mercator", "width": BIG_WIDTH}},
        "reprojection": {
            "format": "tiff",
            "interpolation": "bilinear",
            "error_threshold": 0.125,
            "cache_inverse": cache,
        },
    }
    write_config(workdir, config)
    command = snakemake_command("--configfile", "config.yaml", "--cores", "2", "-q", snakefile=snakefile)
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    result = benchmark_record(workdir / "results/benchmarks/maps/big/pole_shift.tsv")
    result["log"] = (workdir / "results/logs/maps/big/pole_shift.log").read_text()
    if cache:
        (inverse,) = (workdir / "results/benchmarks/maps/inverse").glob("*.tsv")
        result["inverse"] = benchmark_record(inverse)
        result["inverse"]["bytes"] = sum(p.stat().st_size for p in (workdir / "results/maps/inverse").iterdir())
    shutil.rmtree(workdir)
    return result


def mapping_error(rows_every: int = 5) -> float:
    """Largest distance in source pixels between the job's interpolated inverse map and the exact one.

    Every ``rows_every``-th output row of every tile, exact values in float64.
    """
    import numpy as np
    from pixelflow.maps.georef import source_geometry
    from pixelflow.maps.inverse_map import exact_coordinates, interpolated_coordinates, mapping_task
    from pixelflow.maps.reproject import plan_tiles

    geometry = source_geometry({}, BIG_WIDTH, BIG_HEIGHT)
    task = mapping_task({"kind": "transverse_mercator"}, BIG_WIDTH, BIG_HEIGHT, geometry, 0.125, 8)
    worst = 0.0
    for row0, row1, col0, col1 in plan_tiles(BIG_HEIGHT, BIG_WIDTH, task.grid_step):
        coords, _ = interpolated_coordinates(task, row0, row1, col0, col1)
        rows = np.arange(row0, row1, rows_every)
        cols = np.arange(col0, col1)
        exact_x, exact_y = exact_coordinates(task, rows[:, None], cols[None, :])
        got = coords[rows - row0]
        dx = np.abs(got[..., 0] - exact_x)
        dx = np.minimum(dx, BIG_WIDTH - dx)
        worst = max(worst, float(np.nanmax(np.maximum(dx, np.abs(got[..., 1] - exact_y)))))
    return worst


def run_gdalwarp_comparison(args, workflow_dir: Path) -> None:
    folder = Path(args.scratch)
    snakefile = workflow_dir / "Snakefile"
    input_path = make_input(folder, workflow_dir / MAP_NAME)
    gdal, computed, cached = [], [], []
    for _ in range(args.repeats):
        gdal.append(run_gdalwarp(input_path, folder))
        computed.append(run_pixelflow(input_path, folder, snakefile, cache=False))
        cached.append(run_pixelflow(input_path, folder, snakefile, cache=True))
    output_mb = BIG_WIDTH * BIG_HEIGHT * 3 / (1 << 20)
    gdal_s = statistics.median(gdal)
    methods = {
        "pixelflow job, inverse map computed in the job (cache_inverse: false)": computed,
        "pixelflow job, inverse map read from the cache (cache_inverse: true)": cached,
        "its map_inverse job (cache_inverse: true)": [run["inverse"] for run in cached],
    }
    size = f"{BIG_WIDTH}x{BIG_HEIGHT}"
    print(f"{size} plate carree -> {size} transverse Mercator, bilinear, uncompressed TIFF, ")
    print(f"2 cores, median of {args.repeats} (output image {output_mb:.0f} MiB)\n")
    rows = [["gdalwarp -r bilinear -wo NUM_THREADS=2", f"{gdal_s:.2f}", "1.00", "", "", "", ""]]
    for label, runs in methods.items():
        s, rss, pss = (statistics.median(run[key] for run in runs) for key in ("s", "max_rss", "max_pss"))
        memory = [f"{rss:.0f}", f"{pss:.0f}", f"{rss / output_mb:.2f}x", f"{pss / output_mb:.2f}x"]
        rows.append([label, f"{s:.2f}", f"{s / gdal_s:.2f}", *memory])
    header = ["method", "wall time (s)", "ratio to gdalwarp", "max_rss (MiB)", "max_pss (MiB)", "rss/output"]
    print(md_table([*header, "pss/output"], rows))
    print("\nSnakemake samples a job's memory every 0.5 s: a job under a second may be caught at its start.")
    print(f"cache file: {cached[-1]['inverse']['bytes'] / (1 << 20):.1f} MiB")
    print(f"largest inverse-map error (every 5th row, against float64 exact): {mapping_error():.4f} px")
    for label, runs in (("computed", computed), ("cached", cached)):
        print(f"\nlast pixelflow job log ({label}):\n")
        print("\n".join("    " + line for line in runs[-1]["log"].splitlines()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("classic", "gdalwarp"), help="which comparison to run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", type=Path, help="working folder (default: benchmarks/scratch/maps/<mode>)")
    add_source_option(parser)
    args = parser.parse_args(argv)
    args.scratch = args.scratch or SCRATCH / "maps" / args.mode
    args.scratch.mkdir(parents=True, exist_ok=True)
    workflow_dir, note = snapshot_workflow(args.source, SCRATCH / "maps" / "workflow")
    use_scripts(workflow_dir)
    log(f"measuring {note}")
    {"classic": run_classic, "gdalwarp": run_gdalwarp_comparison}[args.mode](args, workflow_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
