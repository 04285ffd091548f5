"""Filter the images of one dataset shard for every σ: a statistics table and the 8-bit filtered images.

A generated dataset's images are drawn in memory from their own random streams
(the arrays its shard job stores losslessly); an external dataset's are read.
"""

from pixelflow.io.manifest import read_manifest, row_label
from pixelflow.joblog import job_log
from pixelflow.progress import Progress
from pixelflow.stats.variance import write_generated_shard, write_shard


def main(job):
    source = job.params.source
    folders = list(job.output.filtered)
    with job_log(job.log[0], f"stats {job.output.table}") as log:
        progress = Progress(log, source["stop"] - source["start"], "images")
        if source["kind"] == "generated":
            rows = write_generated_shard(
                job.output.table,
                folders,
                source["spec"],
                source["start"],
                source["stop"],
                job.params.settings,
                job.threads,
                progress=progress.advance,
            )
        else:
            (listing,) = job.input.shard
            images = [(row["index"], row_label(row), row["path"]) for row in read_manifest(listing)]
            rows = write_shard(
                job.output.table,
                folders,
                job.wildcards.dataset,
                images,
                job.params.settings,
                job.threads,
                progress=progress.advance,
            )
        progress.finish()
        log.info(
            "%s images %d-%d: %d rows, %d worker processes",
            source["kind"],
            source["start"],
            source["stop"] - 1,
            rows,
            job.threads,
        )


if __name__ == "__main__":
    main(snakemake)
