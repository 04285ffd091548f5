# pixelflow: parallel image batch work. The config comes from --configfile; the
# default profile (profiles/default) names the bundled demo config/config.yaml
# when none is given, so a user's own config is never merged with the demo's.
from snakemake.utils import min_version

min_version("9.0")


report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/pipelines.smk"
include: "rules/maps.smk"
include: "rules/mosaics.smk"
include: "rules/stats.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
