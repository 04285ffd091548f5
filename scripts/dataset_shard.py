"""Write one dataset shard: generate its images, or check external ones."""

from pixelflow.datasets import write_external_shard, write_generated_shard
from pixelflow.joblog import job_log

shard = snakemake.params.shard
with job_log(snakemake.log[0], f"shard {snakemake.output[0]}") as log:
    if shard["kind"] == "generated":
        rows = write_generated_shard(
            snakemake.output[0], shard["spec"], shard["start"], shard["stop"], snakemake.threads
        )
    else:
        rows = write_external_shard(
            snakemake.output[0],
            snakemake.input.images,
            shard["start"],
            snakemake.threads,
            shape=shard["shape"],
            dtype=shard["dtype"],
        )
    log.info(
        "%d images, indexes %d..%d, %d worker processes",
        len(rows),
        shard["start"],
        shard["stop"] - 1,
        snakemake.threads,
    )
