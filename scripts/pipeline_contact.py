"""Draw a pipeline's first input images beside its results."""

from pixelflow.io.manifest import read_manifests
from pixelflow.joblog import job_log
from pixelflow.pipelines.summary import write_pairs_sheet


def main(job):
    with job_log(job.log[0], f"pipeline contact sheet {job.output[0]}") as log:
        pairs = job.params.pairs
        inputs = [row["path"] for row in read_manifests(job.input.sources)[:pairs]]
        results = [row["path"] for row in read_manifests(job.input.results)[:pairs]]
        shape = write_pairs_sheet(job.output[0], inputs, results, job.params.cell, job.threads)
        log.info("%d pairs, %s", len(inputs), shape)


if __name__ == "__main__":
    main(snakemake)
