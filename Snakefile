# homlearn: microstructures -> unit-cell solves (Dask) -> Zarr datasets -> surrogates -> report.
#   snakemake --cores N                       (default config.yaml)
#   snakemake --cores N --configfile workflow/configs/heat2d-paper.yaml
#   snakemake --cores N viscoelastic3d_all --configfile workflow/configs/viscoelastic3d-paper.yaml
#   snakemake --cores N rln_all --configfile workflow/configs/rln_elastic_ls-paper.yaml   (GPU)
#   snakemake --report results/report.html    (after a run)
import json
import shlex
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))  # the package, also when rules run in conda envs (--sdm conda)

from snakemake.utils import min_version, validate
from homlearn.config import validate_config

min_version("9.0")

report: "workflow/report/workflow.rst"

configfile: "config.yaml"

validate_config(config)  # stops here with every offending key named, before any work
validate(config, "workflow/schemas/config.schema.yaml")  # snakemake's own check (defaults filled)

R = config["results"]


def _rule_python():
    """The conda env's python under --sdm conda, else the interpreter running Snakemake."""
    from snakemake.settings.types import DeploymentMethod

    settings = workflow.deployment_settings
    if settings is not None and DeploymentMethod.CONDA in settings.deployment_method:
        return "python"
    return shlex.quote(sys.executable)


HOMLEARN = f"PYTHONPATH={shlex.quote(str(SRC))}${{PYTHONPATH:+:$PYTHONPATH}} {_rule_python()} -m homlearn.cli"


def config_json(section, keep=None, drop=()):
    """One config section (only the keys a rule uses) as a shell-quoted JSON argument.

    A rule's params are Snakemake rerun triggers: a rule sees only what it depends on, so
    changing, say, a learning rate retrains without touching the datasets.
    """
    part = {k: v for k, v in config[section].items() if (keep is None or k in keep) and k not in drop}
    chosen = {section: part}
    if section in ("heat2d", "elastic_ls", "cp_grid", "cp_paths2d") and keep is None:
        chosen["dask"] = config["dask"]
    return shlex.quote(json.dumps(chosen, sort_keys=True))


def gpu_resource(train):
    """GPUs a training rule asks for (resource 'gpu', --gpus under the SLURM profile): the
    ``train.gpu`` setting, 0 when the device is 'cpu'. Unlimited with plain --cores."""
    return 0 if train["device"] == "cpu" else train["gpu"]


include: "workflow/rules/cluster.smk"  # stage_threads, stage_mem_mb (used by the solve rules)
include: "workflow/rules/heat2d.smk"
include: "workflow/rules/elastic_ls.smk"
include: "workflow/rules/cp_grid.smk"
include: "workflow/rules/cp_paths2d.smk"
include: "workflow/rules/viscoelastic3d.smk"
include: "workflow/rules/composite1d.smk"
include: "workflow/rules/laminate.smk"
include: "workflow/rules/mg_taylor.smk"
include: "workflow/rules/rno.smk"
include: "workflow/rules/rln.smk"
include: "workflow/rules/rno_laminate_studies.smk"
include: "workflow/rules/surrogates_cp_paths2d.smk"
include: "workflow/rules/surrogates_mg_taylor.smk"
include: "workflow/rules/gcnn.smk"
include: "workflow/rules/gcnn_studies.smk"  # cp_grid2d Fig. 12b sensitivity, Fig. 14-17 interpretation
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        rules.heat2d_all.input,
        rules.elastic_ls_all.input,
        rules.cp_grid_all.input,
        rules.cp_paths2d_all.input,
        rules.viscoelastic3d_all.input,
        rules.composite1d_all.input,
        rules.laminate_all.input,
        rules.mg_taylor_all.input,
