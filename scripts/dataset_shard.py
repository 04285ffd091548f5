"""Write one dataset shard: generate its images, or check external ones."""

from pixelflow.datasets import write_external_shard, write_generated_shard
from pixelflow.joblog import job_log

shard = snakemake.params.shard  # noqa: F821
with job_log(snakemake.log[0], f"shard {snakemake.output[0]}") as log:  # noqa: F821
    if shard["kind"] == "generated":
        rows = write_generated_shard(
            snakemake.output[0], shard["spec"], shard["start"], shard["stop"], snakemake.threads  # noqa: F821
        )
    else:
        rows = write_external_shard(
            snakemake.output[0],  # noqa: F821
            snakemake.input.images,  # noqa: F821
            shard["start"],
            snakemake.threads,  # noqa: F821
            shape=shard["shape"],
            dtype=shard["dtype"],
        )
    log.info("%d images, indexes %d..%d, %d worker processes", len(rows), shard["start"], shard["stop"] - 1,
             snakemake.threads)  # noqa: F821
