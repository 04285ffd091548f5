# Rules of the maps stage; helper functions live in scripts/pixelflow/plan_maps.py.


plan_maps.check_config(config, Path.cwd())
MAP_IMAGE = plan_maps.IMAGE_SUFFIXES[config["reprojection"]["format"]]
MAP_WORLD_FILE = plan_maps.WORLD_SUFFIXES[config["reprojection"]["format"]]


wildcard_constraints:
    map=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    projection=r"[A-Za-z0-9][A-Za-z0-9_-]*",


rule map_reproject:
    input:
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
