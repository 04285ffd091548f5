"""Draw a contact sheet of the first images of a zarr dataset, read from its Zarr array."""

from pathlib import Path

from pixelflow.datasets.montage import write_montage_of_images
from pixelflow.io.zarrstore import limit_threads, open_images, read_image
from pixelflow.joblog import job_log


def main(job):
    with job_log(job.log[0], f"montage {job.output[0]}") as log:
        limit_threads(job.threads)
        array = open_images(Path(job.input.metadata).parent)
        count = min(job.params.images, array.shape[0])
        shape = write_montage_of_images(
            job.output[0], (read_image(array, index) for index in range(count)), job.params.cell
        )
        log.info("montage of %d images, %s", count, shape)


if __name__ == "__main__":
    main(snakemake)
