"""Stack all images of a dataset into one .npy array."""

from pixelflow.datasets import read_manifests
from pixelflow.joblog import job_log
from pixelflow.stack import build_stack

with job_log(snakemake.log[0], f"stack {snakemake.output[0]}") as log:
    rows = read_manifests(snakemake.input.shards)
    shape = build_stack(snakemake.output[0], rows, snakemake.threads)
    log.info("stack shape %s from %d shards", shape, len(snakemake.input.shards))
