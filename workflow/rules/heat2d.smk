# heat2d: 2D polycrystal heat conduction (paper gcnn section 3.1, appendix A.1).
# Stage outputs are small JSON summaries; the Zarr stores beside them are resumable side
# outputs, so a killed stage keeps every finished batch (Snakemake would delete a declared
# directory output before rerunning the job).

H = f"{R}/heat2d"
DATA_KEYS_EXCLUDED = ("models", "train", "report", "sensitivity")  # what the data stages do not depend on


def train_config(wildcards):
    """The training settings and the one model's hyperparameters (its rerun triggers)."""
    h = config["heat2d"]
    train = {k: v for k, v in h["train"].items() if k != "gpu"}  # placement, not a result
    part = {"train": train, "models": {wildcards.model: h["models"][wildcards.model]}}
    return shlex.quote(json.dumps({"heat2d": part}, sort_keys=True))


HEAT_MODELS = ["fgcnn", "rgcnn"]
HEAT_FIGURES = ["fig2_microstructures", "fig3b_mixture_rules", "fig13_parity",
                "fig13a_error_distribution", "training_curves"]


rule heat2d_microstructure:
    output:
        summary=f"{H}/microstructure.json",
    params:
        cfg=config_json("heat2d", drop=DATA_KEYS_EXCLUDED),
        store=f"{H}/microstructures.zarr",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(1500),
    log:
        f"{H}/logs/microstructure.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} heat2d microstructure {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {H}/failures.jsonl 2> {log}"


rule heat2d_solve:
    input:
        rules.heat2d_microstructure.output.summary,
    output:
        summary=f"{H}/solve.json",
    params:
        cfg=config_json("heat2d", drop=DATA_KEYS_EXCLUDED),
        micro=f"{H}/microstructures.zarr",
        store=f"{R}/datasets/heat2d.zarr",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(2000),
    log:
        f"{H}/logs/solve.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} heat2d solve {params.micro} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {H}/failures.jsonl 2> {log}"


rule heat2d_train:
    input:
        rules.heat2d_solve.output.summary,
    output:
        model=f"{H}/models/{{model}}/model.json",
    params:
        cfg=train_config,
        store=f"{R}/datasets/heat2d.zarr",
        out=lambda w: f"{H}/models/{w.model}",
    wildcard_constraints:
        model="|".join(HEAT_MODELS),
    threads: 1
    resources:
        gpu=gpu_resource(config["heat2d"]["train"]),
    log:
        f"{H}/logs/train_{{model}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} heat2d train {params.store} {wildcards.model} {params.out} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule heat2d_evaluate:
    input:
        models=expand(f"{H}/models/{{model}}/model.json", model=HEAT_MODELS),
    output:
        metrics=f"{H}/metrics.json",
        table=report(f"{H}/metrics.csv", caption="../report/heat2d_metrics.rst", category="heat2d",
                     labels={"figure": "validation metrics"}),
        figures=[report(f"{H}/{name}.png", caption=f"../report/heat2d_{name}.rst", category="heat2d",
                        labels={"figure": name}) for name in HEAT_FIGURES],
    params:
        cfg=config_json("heat2d", keep=("report",)),
        store=f"{R}/datasets/heat2d.zarr",
        models=" ".join(f"--model {m}={H}/models/{m}" for m in HEAT_MODELS),
    log:
        f"{H}/logs/evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} heat2d evaluate {params.store} {H} {params.models} --config-json {params.cfg} > {log} 2>&1"


rule heat2d_summary:
    input:
        f"{H}/metrics.json",
    output:
        report(f"{R}/summary/field_surrogates_heat2d.md", caption="../report/heat2d_summary.rst",
               category="heat2d", labels={"figure": "summary table"}),
    log:
        f"{H}/logs/summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn summary {output} {input} > {log} 2>&1"


rule heat2d_all:
    input:
        f"{H}/metrics.json",
        rules.heat2d_summary.output,


# Fig. 12a: sensitivity to N_filters (fGCNN; rGCNN with N_features fixed), one model per seed.
SENS = config["heat2d"]["sensitivity"]
SENS_RUNS = [f"{m}_f{f}_s{s}" for m in HEAT_MODELS for f in SENS["filters"] for s in SENS["seeds"]]


def sensitivity_config(wildcards):
    """The heat2d train config of one sweep point: the sweep's budget, its seed, its widths."""
    hyper = {"n_filters": int(wildcards.filters), "n_dense": SENS["n_dense"]}
    if wildcards.model == "rgcnn":
        hyper["n_features"] = SENS["rgcnn_features"]
    train = {k: v for k, v in SENS["train"].items() if k != "gpu"} | {"seed": int(wildcards.seed)}
    return shlex.quote(json.dumps({"heat2d": {"train": train, "models": {wildcards.model: hyper}}}, sort_keys=True))


rule heat2d_sensitivity_train:
    input:
        rules.heat2d_solve.output.summary,
    output:
        model=f"{H}/sensitivity/{{model}}_f{{filters}}_s{{seed}}/model.json",
    params:
        cfg=sensitivity_config,
        store=f"{R}/datasets/heat2d.zarr",
        out=lambda w: f"{H}/sensitivity/{w.model}_f{w.filters}_s{w.seed}",
    wildcard_constraints:
        model="|".join(HEAT_MODELS),
        filters=r"\d+",
        seed=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(SENS["train"]),
    log:
        f"{H}/logs/sensitivity_{{model}}_f{{filters}}_s{{seed}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} heat2d train {params.store} {wildcards.model} {params.out} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule heat2d_sensitivity:
    input:
        models=expand(f"{H}/sensitivity/{{run}}/model.json", run=SENS_RUNS),
    output:
        metrics=f"{H}/sensitivity/metrics.json",
        table=f"{H}/sensitivity/metrics.csv",
        figure=report(f"{H}/fig12a_sensitivity.png", caption="../report/heat2d_fig12a_sensitivity.rst",
                      category="heat2d", labels={"figure": "fig12a_sensitivity"}),
    params:
        store=f"{R}/datasets/heat2d.zarr",
        runs=" ".join(f"--run {r}={H}/sensitivity/{r}" for r in SENS_RUNS),
    log:
        f"{H}/logs/sensitivity.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} heat2d sensitivity {params.store} {H} {params.runs} > {log} 2>&1"
