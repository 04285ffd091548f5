from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The bundled demo config applies only when no --configfile is given, so a
# user's own config is never merged with the demo's datasets.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/maps.smk"
include: "rules/mosaics.smk"
include: "rules/stats.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
