# Rules of the maps stage; helper functions live in scripts/pixelflow/plan_maps.py.


plan_maps.check_config(config, Path.cwd())
MAP_IMAGE = plan_maps.IMAGE_SUFFIXES[config["reprojection"]["format"]]
MAP_WORLD_FILE = plan_maps.WORLD_SUFFIXES[config["reprojection"]["format"]]
# {(map, projection): key} and {key: spec} of the cached inverse maps (none unless cache_inverse).
MAP_INVERSE_KEYS, MAP_INVERSE_SPECS = plan_maps.plan_inverses(config, Path.cwd())


wildcard_constraints:
    map=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    projection=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    key=r"[0-9a-f]{16}",


rule map_inverse:
    input:
        code=core_modules("map_inverse.py"),
    output:
        f"{plan_maps.INVERSE_FOLDER}/{{key}}{plan_maps.INVERSE_SUFFIX}",
    log:
        "results/logs/maps/inverse/{key}.log",
    benchmark:
        "results/benchmarks/maps/inverse/{key}.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: plan_maps.inverse_mem_mb(
            MAP_INVERSE_SPECS, wildcards.key, attempt
        ),
        runtime=per_attempt(10),
    params:
        spec=lambda wildcards: plan_maps.inverse_spec_of(
            MAP_INVERSE_SPECS, wildcards.key
        ),
    script:
        "../scripts/map_inverse.py"


rule map_reproject:
    input:
        unpack(
            lambda wildcards: plan_maps.cached_inverse(
                MAP_INVERSE_KEYS, wildcards.map, wildcards.projection
            )
        ),
        map=lambda wildcards: config["maps"][wildcards.map]["path"],
        code=core_modules("map_reproject.py"),
    output:
        image=report(
            f"results/maps/{{map}}/{{projection}}{MAP_IMAGE}",
            caption="captions/maps_projection.rst",
            category="Maps",
            subcategory="{map}",
        ),
        georef="results/maps/{map}/{projection}.json",
        world=f"results/maps/{{map}}/{{projection}}{MAP_WORLD_FILE}",
    log:
        "results/logs/maps/{map}/{projection}.log",
    benchmark:
        "results/benchmarks/maps/{map}/{projection}.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: lambda wildcards: plan_maps.job_threads(config, wildcards.projection)
    resources:
        mem_mb=lambda wildcards, attempt: plan_maps.job_mem_mb(
            config, wildcards.map, wildcards.projection, attempt
        ),
        runtime=per_attempt(10),
    params:
        geometry=lambda wildcards: plan_maps.map_geometry(config, wildcards.map),
        projection=lambda wildcards: plan_maps.projection_spec(
            config, wildcards.projection
        ),
        settings=config["reprojection"],
    script:
        "../scripts/map_reproject.py"
