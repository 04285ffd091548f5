"""Write a zarr dataset's index and its array's final zarr.json; drop shards the plan no longer has."""

from pathlib import Path

from pixelflow.datasets.zarrarray import finish_store
from pixelflow.io.manifest import remove_stale_shards, write_dataset_index
from pixelflow.joblog import job_log


def main(job):
    index = job.params.index
    with job_log(job.log[0], f"index {job.output.manifest}") as log:
        shard_dirs = [Path(manifest).parent for manifest in job.input.manifests]
        count = write_dataset_index(job.output.manifest, shard_dirs)
        removed_files = finish_store(Path(job.output.metadata).parent, index["spec"], index["count"])
        removed = remove_stale_shards(Path(job.output.manifest).parent, index["shards"])
        log.info(
            "%d images in %d shards; removed stale shard folders %s and shard files %s",
            count,
            len(shard_dirs),
            [path.name for path in removed],
            removed_files,
        )


if __name__ == "__main__":
    main(snakemake)
