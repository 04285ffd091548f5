"""Draw a contact sheet of the first images of a dataset."""

from pixelflow.datasets import read_manifests
from pixelflow.joblog import job_log
from pixelflow.montage import write_montage

with job_log(snakemake.log[0], f"montage {snakemake.output[0]}") as log:
    rows = read_manifests(snakemake.input.shards)[: snakemake.params.images]
    shape = write_montage(snakemake.output[0], [row["path"] for row in rows], snakemake.params.cell, snakemake.threads)
    log.info("montage of %d images, %s", len(rows), shape)
