"""Export one of scikit-image's bundled sample images as a PNG file."""

from pixelflow.joblog import job_log
from pixelflow.samples import write_sample


def main(job):
    with job_log(job.log[0], f"sample {job.output[0]}") as log:
        shape = write_sample(job.wildcards.sample, job.output[0])
        log.info("wrote %s, %s", job.output[0], shape)


if __name__ == "__main__":
    main(snakemake)
