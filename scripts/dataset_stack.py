"""Stack all images of a dataset into one .npy array."""

from pixelflow.datasets.stack import build_stack
from pixelflow.joblog import job_log
from pixelflow.progress import Progress


def main(job):
    with job_log(job.log[0], f"stack {job.output[0]}") as log:
        progress = Progress(log, None, "images")  # build_stack gives the total once it has read the manifests
        shape = build_stack(job.output[0], job.input.shards, job.threads, progress=progress.advance)
        progress.finish()
        log.info("stack shape %s from %d shards", shape, len(job.input.shards))


if __name__ == "__main__":
    main(snakemake)
