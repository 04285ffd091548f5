"""Write one dataset shard: generate its images, or check external ones."""

from pixelflow.datasets.shards import write_external_shard, write_generated_shard
from pixelflow.joblog import job_log
from pixelflow.progress import Progress


def main(job):
    shard = job.params.shard
    with job_log(job.log[0], f"shard {job.output[0]}") as log:
        progress = Progress(log, shard["stop"] - shard["start"], "images")
        if shard["kind"] == "generated":
            rows = write_generated_shard(
                job.output[0], shard["spec"], shard["start"], shard["stop"], job.threads, progress=progress.advance
            )
        else:
            rows = write_external_shard(
                job.output[0],
                job.input.images,
                shard["start"],
                job.threads,
                shape=shard["shape"],
                dtype=shard["dtype"],
                progress=progress.advance,
            )
        progress.finish()
        log.info("%d images from index %d, %d worker processes", len(rows), shard["start"], job.threads)


if __name__ == "__main__":
    main(snakemake)
