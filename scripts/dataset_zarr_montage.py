"""Draw a contact sheet of the first images of a zarr dataset, read from its Zarr array."""

from pathlib import Path

from pixelflow.datasets.montage import write_montage_of_images
from pixelflow.io.zarrstore import open_reader, read_image
from pixelflow.joblog import job_log


def main(job):
    with job_log(job.log[0], f"montage {job.output[0]}") as log:
        reader = open_reader(Path(job.input.metadata).parent)
        count = min(job.params.images, len(reader))
        shape = write_montage_of_images(
            job.output[0], (read_image(reader, index) for index in range(count)), job.params.cell
        )
        log.info("montage of %d images, %s", count, shape)


if __name__ == "__main__":
    main(snakemake)
