"""Reproject one map to one projection: the image, its JSON georeferencing, a world file and a .prj."""

from pixelflow.io.geotiff import write_aux_xml, write_prj
from pixelflow.joblog import job_log
from pixelflow.maps.georef import write_georeference
from pixelflow.maps.reproject import reproject_file
from pixelflow.progress import Progress


def main(job):
    with job_log(job.log[0], f"reproject {job.input.map} to {job.output.image}") as log:
        projection, settings = dict(job.params.projection), job.params.settings
        inverse = job.input.get("inverse")  # present when the inverse map is cached
        if inverse:
            log.info("coarse grid from the cached inverse map %s", inverse)
        progress = Progress(log, None, "tiles")  # reproject_file gives the total once it has planned the tiles
        facts = reproject_file(
            job.input.map,
            job.output.image,
            dict(job.params.geometry),
            projection,
            grid=job.params.grid or None,
            interpolation=settings["interpolation"],
            threshold=settings["error_threshold"],
            grid_step=settings["grid_step"],
            threads=job.threads,
            pixel_limit=settings["pixel_limit"],
            compression=job.params.compression,
            cog=settings["format"] == "cog",
            png_strategy=settings["png_strategy"],
            png_filter=settings["png_filter"],
            inverse_path=inverse,
            log=log,
            progress=progress.advance,
        )
        progress.finish()
        write_georeference(
            job.output.georef,
            job.output.world,
            facts["crs"],
            facts["transform"],
            facts["width"],
            facts["height"],
            facts["nodata"],
        )
        write_prj(job.output.prj, facts["crs"])
        if job.output.get("aux"):  # a PNG: GDAL reads its coordinate system from here
            write_aux_xml(job.output.aux, facts["crs"])
        log.info(
            "%dx%d, %d channel(s), %d of %d pixels mapped exactly",
            facts["width"],
            facts["height"],
            facts["channels"],
            facts["exact_pixels"],
            facts["width"] * facts["height"],
        )


if __name__ == "__main__":
    main(snakemake)
