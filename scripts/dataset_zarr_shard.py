"""Write one shard of a zarr dataset: generate its images into the array's shard file, and their manifest."""

from pixelflow.datasets.zarrshards import write_zarr_shard
from pixelflow.joblog import job_log
from pixelflow.progress import Progress


def main(job):
    shard = job.params.shard
    with job_log(job.log[0], f"shard {job.output.shard}") as log:
        progress = Progress(log, shard["stop"] - shard["start"], "images")
        rows = write_zarr_shard(
            job.params.store,
            job.output.manifest,
            shard["spec"],
            shard["start"],
            shard["stop"],
            job.threads,
            progress=progress.advance,
        )
        progress.finish()
        log.info("%d images from index %d, %d threads", len(rows), shard["start"], job.threads)


if __name__ == "__main__":
    main(snakemake)
