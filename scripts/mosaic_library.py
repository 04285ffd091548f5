"""Index a tile library: tiles of every image, oriented, with their pooled Lab and RGB features."""

from pixelflow.errors import ConfigError
from pixelflow.io.manifest import read_manifests
from pixelflow.joblog import job_log
from pixelflow.mosaics.tiles import build_library, save_library
from pixelflow.runner import limit_native_threads


def main(job):
    spec, tile = job.params.spec, job.params.tile
    with job_log(job.log[0], f"library {job.output[0]}") as log:
        limit_native_threads(job.threads)
        if "shards" in job.input.keys():
            paths = [row["path"] for row in read_manifests(job.input.shards)]
        else:
            paths = list(job.input.images)
        tiles = build_library(
            paths, tile, spec["mode"], spec["rotations"], spec["flip"], spec["max_tiles"], job.threads
        )
        if len(tiles) == 0:
            raise ConfigError(
                f"config key {spec['key']}: no {tile}x{tile} tile fits in any of its {len(paths)} images "
                f"(an empty library; e.g. {paths[0] if paths else 'no files'})"
            )
        save_library(job.output[0], tiles)
        log.info("%d tiles %s from %d images", len(tiles), tiles.shape[1:], len(paths))


if __name__ == "__main__":
    main(snakemake)
