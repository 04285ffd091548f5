# Rules of the datasets stage; planning in scripts/pixelflow/planning/datasets.py.
# A dataset with storage: zarr has rules of its own (dataset_zarr_*, below).


rule dataset_shard:
    input:
        unpack(
            lambda wildcards: {
                "code": core_modules("dataset_shard.py"),
                **datasets_plan.shard_inputs(dataset_plan(wildcards), wildcards.shard),
            }
        ),
    output:
        directory("results/datasets/{dataset}/shard-{shard}"),
    log:
        "results/logs/datasets/{dataset}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/shard-{shard}.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.storage_names(config, "files")),
    conda:
        "../envs/pixelflow.yaml"
    threads: lambda wildcards: shard_threads(wildcards.dataset)
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.shard_mem_mb(
            config, wildcards.dataset, attempt
        ),
        runtime=lambda wildcards, attempt: datasets_plan.shard_runtime(
            config, dataset_plan(wildcards), attempt
        ),
    params:
        shard=lambda wildcards: datasets_plan.shard_params(
            config, dataset_plan(wildcards), wildcards.shard
        ),
    script:
        "../scripts/dataset_shard.py"


rule dataset_index:
    input:
        shards=lambda wildcards: shard_dirs(wildcards.dataset),
        code=core_modules("dataset_index.py"),
    output:
        "results/datasets/{dataset}/manifest.tsv",
    log:
        "results/logs/datasets/{dataset}/index.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/index.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.file_dataset_names(config)),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=per_attempt(5),
    params:
        shards=lambda wildcards: [
            f"shard-{shard}" for shard in dataset_plan(wildcards).shards
        ],
    script:
        "../scripts/dataset_index.py"


rule dataset_stack:
    input:
        shards=lambda wildcards: shard_dirs(wildcards.dataset),
        code=core_modules("dataset_stack.py"),
    output:
        "results/datasets/{dataset}/stack.npy",
    log:
        "results/logs/datasets/{dataset}/stack.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/stack.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.file_dataset_names(config)),
    conda:
        "../envs/pixelflow.yaml"
    threads: config["max_threads"]
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=lambda wildcards, attempt: datasets_plan.stack_runtime(
            config, dataset_plan(wildcards), attempt
        ),
    script:
        "../scripts/dataset_stack.py"


rule dataset_montage:
    input:
        shards=lambda wildcards: shard_dirs(
            wildcards.dataset,
            dataset_plan(wildcards).shards_covering(config["montage"]["count"]),
        ),
        code=core_modules("dataset_montage.py"),
    output:
        report(
            "results/datasets/{dataset}/montage.png",
            caption="captions/datasets_montage.rst",
            category="Datasets",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/datasets/{dataset}/montage.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/montage.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.file_dataset_names(config)),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1024),
        runtime=per_attempt(10),
    params:
        images=config["montage"]["count"],
        cell=config["montage"]["cell"],
    script:
        "../scripts/dataset_montage.py"


# storage: zarr -------------------------------------------------------------------
# One Zarr array, results/datasets/{dataset}/images.zarr. Shard job k writes the
# array's shard file c/k/0/0 (c/k/0/0/0 for colour images: the rule below) and
# shard-k/manifest.tsv, drawing generated images or decoding an external
# dataset's files (its inputs); the index job writes the array's zarr.json once
# they are all done. The shard jobs' params leave out the count, so that a
# changed count reruns only the shards whose images change.


rule dataset_zarr_shard:
    input:
        unpack(
            lambda wildcards: datasets_plan.shard_inputs(
                dataset_plan(wildcards), wildcards.shard
            )
        ),
        code=core_modules("dataset_zarr_shard.py"),
    output:
        shard="results/datasets/{dataset}/images.zarr/c/{shard}/0/0",
        manifest="results/datasets/{dataset}/shard-{shard}/manifest.tsv",
    log:
        "results/logs/datasets/{dataset}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/shard-{shard}.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.zarr_names(DATASETS, channels=False)),
        shard=r"\d+",
    conda:
        "../envs/pixelflow.yaml"
    threads: lambda wildcards: shard_threads(wildcards.dataset)
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.shard_mem_mb(
            config, wildcards.dataset, attempt
        ),
        runtime=lambda wildcards, attempt: datasets_plan.shard_runtime(
            config, dataset_plan(wildcards), attempt
        ),
    params:
        store=lambda wildcards: datasets_plan.zarr_store(wildcards.dataset),
        shard=lambda wildcards: datasets_plan.zarr_shard_params(
            config, dataset_plan(wildcards), wildcards.shard
        ),
    script:
        "../scripts/dataset_zarr_shard.py"


# Colour images: one more chunk dimension, so the shard file is one folder deeper.
use rule dataset_zarr_shard as dataset_zarr_shard_colour with:
    output:
        shard="results/datasets/{dataset}/images.zarr/c/{shard}/0/0/0",
        manifest="results/datasets/{dataset}/shard-{shard}/manifest.tsv",
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.zarr_names(DATASETS, channels=True)),
        shard=r"\d+",


rule dataset_zarr_index:
    input:
        unpack(lambda wildcards: zarr_shard_outputs(wildcards.dataset)),
        code=core_modules("dataset_zarr_index.py"),
    output:
        manifest="results/datasets/{dataset}/manifest.tsv",
        # Updated in place (not removed before the job), so that the job can
        # refuse a store that holds another array.
        metadata=update("results/datasets/{dataset}/images.zarr/zarr.json"),
    log:
        "results/logs/datasets/{dataset}/index.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/index.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.zarr_names(DATASETS)),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=per_attempt(5),
    params:
        index=lambda wildcards: datasets_plan.zarr_index_params(
            config, dataset_plan(wildcards)
        ),
    script:
        "../scripts/dataset_zarr_index.py"


rule dataset_zarr_stack:
    input:
        shards=lambda wildcards: zarr_shard_outputs(wildcards.dataset)["shards"],
        metadata="results/datasets/{dataset}/images.zarr/zarr.json",
        code=core_modules("dataset_zarr_stack.py"),
    output:
        "results/datasets/{dataset}/stack.npy",
    log:
        "results/logs/datasets/{dataset}/stack.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/stack.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.zarr_names(DATASETS)),
    conda:
        "../envs/pixelflow.yaml"
    threads: config["max_threads"]
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=lambda wildcards, attempt: datasets_plan.stack_runtime(
            config, dataset_plan(wildcards), attempt
        ),
    script:
        "../scripts/dataset_zarr_stack.py"


rule dataset_zarr_montage:
    input:
        shards=lambda wildcards: zarr_shard_outputs(
            wildcards.dataset,
            dataset_plan(wildcards).shards_covering(config["montage"]["count"]),
        )["shards"],
        # Read after the index job writes it, but a new count alone (a newer
        # file) does not change the first images: only their shards rerun this.
        metadata=ancient("results/datasets/{dataset}/images.zarr/zarr.json"),
        code=core_modules("dataset_zarr_montage.py"),
    output:
        report(
            "results/datasets/{dataset}/montage.png",
            caption="captions/datasets_montage.rst",
            category="Datasets",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/datasets/{dataset}/montage.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/montage.tsv"
    wildcard_constraints:
        dataset=names_pattern(datasets_plan.zarr_names(DATASETS)),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1024),
        runtime=per_attempt(10),
    params:
        images=config["montage"]["count"],
        cell=config["montage"]["cell"],
    script:
        "../scripts/dataset_zarr_montage.py"
