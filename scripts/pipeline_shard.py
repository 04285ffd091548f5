"""Run a filter pipeline on one shard of its dataset: steps, metrics and the saved results."""

from pixelflow.io.manifest import read_manifest
from pixelflow.joblog import job_log
from pixelflow.pipelines.run import images_with_nonfinite, write_pipeline_shard
from pixelflow.progress import Progress


def main(job):
    spec = job.params.spec
    with job_log(job.log[0], f"pipeline {job.output[0]}") as log:
        (listing,) = job.input.source
        sources = read_manifest(listing)
        progress = Progress(log, len(sources), "images")
        rows = write_pipeline_shard(job.output[0], sources, spec, job.threads, progress=progress.advance)
        progress.finish()
        log.info("%d images, %d steps, %d worker processes", len(rows), len(spec["steps"]), job.threads)
        if bad := images_with_nonfinite(rows, spec):
            log.warning("%d images have NaN or infinite pixels: see the nonfinite column of metrics.tsv", bad)


if __name__ == "__main__":
    main(snakemake)
