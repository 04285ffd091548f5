"""Stack all images of a dataset into one .npy array."""

from pixelflow.joblog import job_log
from pixelflow.manifest import read_manifests
from pixelflow.stack import build_stack


def main(job):
    with job_log(job.log[0], f"stack {job.output[0]}") as log:
        rows = read_manifests(job.input.shards)
        shape = build_stack(job.output[0], rows, job.threads)
        log.info("stack shape %s from %d shards", shape, len(job.input.shards))


if __name__ == "__main__":
    main(snakemake)
