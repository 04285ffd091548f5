"""Build one photomosaic, written band by band, with its report and placement table."""

import json
import time

from pixelflow.atomic import write_text
from pixelflow.io.images import read_image
from pixelflow.io.png import write_png_bands
from pixelflow.joblog import job_log
from pixelflow.mosaics.render import (
    match_mosaic,
    measured_bands,
    mosaic_report,
    placement_table,
    quality_from_sums,
    render_bands,
)
from pixelflow.mosaics.tiles import load_library
from pixelflow.runner import limit_native_threads


def main(job):
    spec = job.params.spec
    with job_log(job.log[0], f"mosaic {job.output.image}") as log:
        limit_native_threads(job.threads)
        started = time.perf_counter()
        target = read_image(job.input.target)
        library = load_library(job.input.library)
        load_seconds = time.perf_counter() - started
        layout = match_mosaic(target, library["tiles"], library["pooled"], spec, job.threads)
        log.info("matched %d x %d cells in %.2f s", layout.rows, layout.cols, layout.seconds["matching"])

        started = time.perf_counter()
        scale = spec["scale"]
        bands = render_bands(layout, library["tiles"], scale, spec["colour_correction"])
        sums = [0.0, 0.0, 0, 0]
        shape = [layout.rows * scale[0], layout.cols * scale[1]] + ([] if layout.grey else [3])
        channels = 1 if layout.grey else 3
        write_png_bands(job.output.image, shape[0], shape[1], channels, measured_bands(layout, bands, scale, sums))
        layout.seconds["render_and_quality"] = time.perf_counter() - started

        report = mosaic_report(layout, spec, len(library["tiles"]), shape, quality_from_sums(*sums))
        report = {"target": str(job.input.target), **report, "skipped_images": library["skipped"]}
        report["seconds"] = {"load": round(load_seconds, 4), **report["seconds"]}
        write_text(job.output.placements, placement_table(layout, library["provenance"], library["files"]))
        write_text(job.output.report, json.dumps(report, indent=2) + "\n")
        log.info("%s", json.dumps(report))


if __name__ == "__main__":
    main(snakemake)
