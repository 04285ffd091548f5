"""Build one photomosaic and its report (usage, quality, seconds per phase)."""

import json
import time

from pixelflow.atomic import write_text
from pixelflow.io.images import read_image, write_image
from pixelflow.joblog import job_log
from pixelflow.mosaics.render import make_mosaic
from pixelflow.mosaics.tiles import load_library
from pixelflow.runner import limit_native_threads


def main(job):
    spec = job.params.spec
    with job_log(job.log[0], f"mosaic {job.output.image}") as log:
        limit_native_threads(job.threads)
        started = time.perf_counter()
        target = read_image(job.input.target)
        tiles, pooled = load_library(job.input.library)
        load_seconds = time.perf_counter() - started
        mosaic, report = make_mosaic(target, tiles, pooled, spec, job.threads)
        report = {"target": str(job.input.target), **report}
        report["seconds"] = {"load": round(load_seconds, 4), **report["seconds"]}
        write_image(job.output.image, mosaic, "png", compression=6)
        write_text(job.output.report, json.dumps(report, indent=2) + "\n")
        log.info("%s", json.dumps(report))


if __name__ == "__main__":
    main(snakemake)
