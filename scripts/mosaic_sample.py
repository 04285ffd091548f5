"""Export one of scikit-image's bundled sample images as an 8-bit PNG file."""

from pixelflow.io.images import write_image
from pixelflow.joblog import job_log
from pixelflow.mosaics.samples import sample_image
from pixelflow.mosaics.tiles import to_uint8


def main(job):
    with job_log(job.log[0], f"sample {job.output[0]}") as log:
        image = to_uint8(sample_image(job.wildcards.sample), job.wildcards.sample)
        write_image(job.output[0], image, "png", compression=6)
        log.info("wrote %s, %s", job.output[0], image.shape)


if __name__ == "__main__":
    main(snakemake)
