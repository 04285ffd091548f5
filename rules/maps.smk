# Rules of the maps stage; planning in scripts/pixelflow/planning/maps.py.

MAP_IMAGE = maps_plan.image_suffix(config)
MAP_WORLD_FILE = maps_plan.world_suffix(config)
# The reprojected image first (it names the job), then, for a PNG, the .aux.xml GDAL (and so QGIS)
# reads its coordinate system from; a GeoTIFF holds its own.
MAP_IMAGE_OUTPUTS = {
    "image": report(
        f"results/maps/{{map}}/{{projection}}{MAP_IMAGE}",
        caption="captions/maps_projection.rst",
        category="Maps",
        subcategory="{map}",
    ),
    **maps_plan.aux_output(config),
}
# What planning read of every map's file and the output grids of crs projections.
MAPS_PLAN = maps_plan.plan_maps(config, WORKDIR)
# {(map, projection): key} and {key: spec} of the cached inverse maps (none unless cache_inverse).
MAP_INVERSE_KEYS, MAP_INVERSE_SPECS = maps_plan.plan_inverses(config, WORKDIR)


wildcard_constraints:
    map=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    projection=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    key=r"[0-9a-f]{16}",


rule map_inverse:
    input:
        code=core_modules("map_inverse.py"),
    output:
        f"{maps_plan.INVERSE_FOLDER}/{{key}}{maps_plan.INVERSE_SUFFIX}",
    log:
        "results/logs/maps/inverse/{key}.log",
    benchmark:
        "results/benchmarks/maps/inverse/{key}.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: maps_plan.inverse_mem_mb(
            MAP_INVERSE_SPECS, wildcards.key, attempt
        ),
        runtime=per_attempt(10),
    params:
        spec=lambda wildcards: maps_plan.inverse_spec_of(
            MAP_INVERSE_SPECS, wildcards.key
        ),
    script:
        "../scripts/map_inverse.py"


rule map_reproject:
    input:
        unpack(
            lambda wildcards: maps_plan.cached_inverse(
                MAP_INVERSE_KEYS, wildcards.map, wildcards.projection
            )
        ),
        map=lambda wildcards: config["maps"][wildcards.map]["path"],
        code=core_modules("map_reproject.py"),
    output:
        **MAP_IMAGE_OUTPUTS,
        georef="results/maps/{map}/{projection}.json",
        world=f"results/maps/{{map}}/{{projection}}{MAP_WORLD_FILE}",
        prj="results/maps/{map}/{projection}.prj",
    log:
        "results/logs/maps/{map}/{projection}.log",
    benchmark:
        "results/benchmarks/maps/{map}/{projection}.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: lambda wildcards: map_threads(wildcards, MAPS_PLAN)
    resources:
        mem_mb=lambda wildcards, attempt: maps_plan.job_mem_mb(
            config, wildcards.map, wildcards.projection, attempt, MAPS_PLAN
        ),
        runtime=per_attempt(10),
    params:
        geometry=lambda wildcards: maps_plan.reprojection_params(
            MAPS_PLAN, config, wildcards.map, wildcards.projection
        )["geometry"],
        grid=lambda wildcards: maps_plan.reprojection_params(
            MAPS_PLAN, config, wildcards.map, wildcards.projection
        )["grid"],
        projection=lambda wildcards: maps_plan.projection_spec(
            config, wildcards.projection
        ),
        compression=maps_plan.compression(config),
        settings=config["reprojection"],
    script:
        "../scripts/map_reproject.py"
