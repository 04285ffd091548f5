"""Draw a dataset's variance plot from its shard tables."""

from pixelflow.joblog import job_log
from pixelflow.stats.plots import plot_variance
from pixelflow.stats.tables import read_table


def main(job):
    with job_log(job.log[0], f"variance plot {job.output[0]}") as log:
        rows = sorted((row for table in job.input.tables for row in read_table(table)), key=lambda row: row["index"])
        plot_variance(job.output[0], rows, job.params.sigmas, f"{job.wildcards.dataset}: variance before and after")
        log.info("%d rows plotted", len(rows))


if __name__ == "__main__":
    main(snakemake)
