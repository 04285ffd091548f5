"""Stack all images of a zarr dataset into one .npy array, read from its Zarr array."""

from pathlib import Path

from pixelflow.datasets.stack import write_array_stack
from pixelflow.io.zarrstore import limit_threads, open_images
from pixelflow.joblog import job_log
from pixelflow.progress import Progress


def main(job):
    with job_log(job.log[0], f"stack {job.output[0]}") as log:
        limit_threads(job.threads)
        progress = Progress(log, None, "images")  # write_array_stack gives the total
        shape = write_array_stack(
            job.output[0], open_images(Path(job.input.metadata).parent), progress=progress.advance
        )
        progress.finish()
        log.info("stack shape %s from %d shard files", shape, len(job.input.shards))


if __name__ == "__main__":
    main(snakemake)
