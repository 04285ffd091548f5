"""Write one shard of a zarr dataset's array and its manifest: generated images, or an external dataset's files."""

from pixelflow.datasets.zarrshards import pack_zarr_shard, write_zarr_shard
from pixelflow.joblog import job_log
from pixelflow.progress import Progress


def main(job):
    shard = job.params.shard
    with job_log(job.log[0], f"shard {job.output.shard}") as log:
        progress = Progress(log, shard["stop"] - shard["start"], "images")
        if "images" in job.input.keys():
            rows = pack_zarr_shard(
                job.params.store,
                job.output.manifest,
                shard["spec"],
                list(job.input.images),
                shard["start"],
                job.threads,
                origin=shard["origin"],
                progress=progress.advance,
            )
        else:
            rows = write_zarr_shard(
                job.params.store,
                job.output.manifest,
                shard["spec"],
                shard["start"],
                shard["stop"],
                progress=progress.advance,
            )
        progress.finish()
        log.info("%d images from index %d, %d threads", len(rows), shard["start"], job.threads)


if __name__ == "__main__":
    main(snakemake)
