"""Draw a contact sheet of the first images of a dataset."""

from pixelflow.datasets.montage import write_montage
from pixelflow.io.manifest import read_manifests
from pixelflow.joblog import job_log


def main(job):
    with job_log(job.log[0], f"montage {job.output[0]}") as log:
        rows = read_manifests(job.input.shards)[: job.params.images]
        shape = write_montage(job.output[0], [row["path"] for row in rows], job.params.cell, job.threads)
        log.info("montage of %d images, %s", len(rows), shape)


if __name__ == "__main__":
    main(snakemake)
