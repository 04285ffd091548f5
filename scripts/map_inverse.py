"""Compute one inverse map (source grid, projection, size, error threshold, grid step) into its cache file."""

from pixelflow.joblog import job_log
from pixelflow.maps.inverse_cache import write_inverse_map


def main(job):
    spec = job.params.spec
    with job_log(job.log[0], f"inverse map {job.output[0]}") as log:
        facts = write_inverse_map(job.output[0], spec)
        log.info(
            "%dx%d %s from a %dx%d %s source, step %d, threshold %g: %d refined cells, %d exact pixels, %d bytes",
            spec["width"],
            spec["height"],
            spec["projection"]["kind"],
            spec["source"]["width"],
            spec["source"]["height"],
            spec["source"]["kind"],
            spec["grid_step"],
            spec["error_threshold"],
            facts["refined_cells"],
            facts["exact_pixels"],
            facts["bytes"],
        )


if __name__ == "__main__":
    main(snakemake)
