"""Write a dataset's index (all images in index order) and drop shards the plan no longer has."""

from pathlib import Path

from pixelflow.io.manifest import remove_stale_shards, write_dataset_index
from pixelflow.joblog import job_log


def main(job):
    with job_log(job.log[0], f"index {job.output[0]}") as log:
        count = write_dataset_index(job.output[0], job.input.shards)
        removed = remove_stale_shards(Path(job.output[0]).parent, job.params.shards)
        log.info("%d images in %d shards; removed stale %s", count, len(job.input.shards), [p.name for p in removed])


if __name__ == "__main__":
    main(snakemake)
