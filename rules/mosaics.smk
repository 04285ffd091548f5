# Rules of the mosaics stage; planning in scripts/pixelflow/planning/mosaics.py.


rule mosaic_sample:
    input:
        code=core_modules("mosaic_sample.py"),
    output:
        "results/mosaics/samples/{sample}.png",
    log:
        "results/logs/mosaics/samples/{sample}.log",
    benchmark:
        "results/benchmarks/mosaics/samples/{sample}.tsv"
    wildcard_constraints:
        sample="|".join(mosaics_plan.SKIMAGE_SAMPLES),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(512),
        runtime=per_attempt(5),
    script:
        "../scripts/mosaic_sample.py"


rule mosaic_library:
    input:
        unpack(
            lambda wildcards: (
                dataset_inputs(dataset, "shards")
                if (dataset := mosaics_plan.library_dataset(config, wildcards.library))
                else {
                    "images": mosaics_plan.library_files(
                        config, wildcards.library, WORKDIR
                    )
                }
            )
        ),
        code=core_modules("mosaic_library.py"),
    output:
        "results/mosaics/libraries/{library}-{tile}px.npz",
    log:
        "results/logs/mosaics/libraries/{library}-{tile}px.log",
    benchmark:
        "results/benchmarks/mosaics/libraries/{library}-{tile}px.tsv"
    wildcard_constraints:
        library=r"[A-Za-z0-9][A-Za-z0-9_-]*",
        tile=r"[1-9]\d*(x[1-9]\d*)?",
    conda:
        "../envs/pixelflow.yaml"
    threads: config["max_threads"]
    resources:
        mem_mb=per_attempt(2048),
        runtime=per_attempt(15),
    params:
        spec=lambda wildcards: mosaics_plan.library_params(config, wildcards.library),
        tile=lambda wildcards: mosaics_plan.parse_tile_label(wildcards.tile),
    script:
        "../scripts/mosaic_library.py"


rule mosaic:
    input:
        unpack(lambda wildcards: mosaics_plan.mosaic_inputs(config, wildcards.mosaic)),
        code=core_modules("mosaic_render.py"),
    output:
        image=report(
            "results/mosaics/{mosaic}.png",
            caption="captions/mosaics_mosaic.rst",
            category="Mosaics",
        ),
        report="results/mosaics/{mosaic}.json",
        placements="results/mosaics/{mosaic}.tsv",
    log:
        "results/logs/mosaics/{mosaic}.log",
    benchmark:
        "results/benchmarks/mosaics/{mosaic}.tsv"
    wildcard_constraints:
        mosaic=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    conda:
        "../envs/pixelflow.yaml"
    threads: config["max_threads"]
    resources:
        mem_mb=per_attempt(2048),
        runtime=per_attempt(15),
    params:
        spec=lambda wildcards: mosaics_plan.mosaic_params(config, wildcards.mosaic),
    script:
        "../scripts/mosaic_render.py"
