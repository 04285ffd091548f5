"""Index a tile library: one tile per image (fitted) or its pieces, oriented, with pooled Lab and RGB features."""

from pixelflow.errors import ConfigError
from pixelflow.io.manifest import read_manifests
from pixelflow.joblog import job_log
from pixelflow.mosaics.tiles import build_library, check_rotations, save_library
from pixelflow.progress import Progress
from pixelflow.runner import limit_native_threads


def main(job):
    spec, tile = job.params.spec, tuple(job.params.tile)
    with job_log(job.log[0], f"library {job.output[0]}") as log:
        limit_native_threads(job.threads)
        if "shards" in job.input.keys():
            paths = [row["path"] for row in read_manifests(job.input.shards)]
        else:
            paths = list(job.input.images)
        try:
            check_rotations(spec["rotations"], tile)
        except ValueError as error:
            raise ConfigError(f"config key {spec['key']}.rotations: {error}") from error
        progress = Progress(log, len(paths), "images")
        library = build_library(
            paths,
            tile,
            spec["mode"],
            rotations=spec["rotations"],
            flip=spec["flip"],
            max_tiles=spec["max_tiles"],
            processes=job.threads,
            fit=spec["fit"],
            on_bad_image=spec["on_bad_image"],
            progress=progress.advance,
        )
        progress.finish()
        for path, reason in library["skipped"]:
            log.warning("skipped %s: %s", path, reason)
        tiles = library["tiles"]
        if len(tiles) == 0:
            readable = len(paths) - len(library["skipped"])
            raise ConfigError(
                f"config key {spec['key']}: no {tile[0]}x{tile[1]} tile comes from any of its {len(paths)} images "
                f"({readable} readable; e.g. {paths[0] if paths else 'no files'})"
            )
        save_library(job.output[0], tiles, library["provenance"], library["files"], library["skipped"])
        log.info(
            "%d tiles %s from %d images (%d skipped)", len(tiles), tiles.shape[1:], len(paths), len(library["skipped"])
        )


if __name__ == "__main__":
    main(snakemake)
