# cp_grid2d studies of the GCNN paper (not in `all`):
# * gcnn_cp_grid2d_sensitivity: Fig. 12b (sec. 6.2), validation RMSE against N_features = N_filters for
#   the fGCNN and the rGCNN, N_dense = 1, one model per (model, width, seed);
# * gcnn_cp_grid2d_interpret: Fig. 14-17 and filter activation (sec. 5, 6.3) of the optimal
#   architectures (N_features = N_filters = 3, N_dense = 1), models interp_<model>.
# Config: gcnn.cp_grid2d.sensitivity / .interpret. Logic: homlearn.evaluate.{sensitivity, gcnn_interpret}.

GS = config["gcnn"]["cp_grid2d"]
GCNN_SENS = GS["sensitivity"]
GCNN_SENS_RUNS = [f"{m}_f{f}_s{s}" for m in ("fgcnn", "rgcnn") for f in GCNN_SENS["filters"] for s in GCNN_SENS["seeds"]]
GCNN_INTERP = GS["interpret"]
GCNN_CP2D = f"{G}/cp_grid2d"


def gcnn_study_config(model, hyper, train):
    """A cp_grid2d train config: the exemplar's data options and head, ``train``, one model's ``hyper``."""
    part = {"data": GS["data"], "head": GS["head"], "train": {k: v for k, v in train.items() if k != "gpu"},
            "models": {model: hyper}, "collapse_restarts": GS["collapse_restarts"]}
    return shlex.quote(json.dumps({"gcnn": {"cp_grid2d": part}}, sort_keys=True))


def gcnn_sensitivity_config(wildcards):
    f = int(wildcards.filters)
    hyper = {"n_filters": f, "n_dense": GCNN_SENS["n_dense"]} | ({"n_features": f} if wildcards.model == "rgcnn" else {})
    return gcnn_study_config(wildcards.model, hyper, GCNN_SENS["train"] | {"seed": int(wildcards.seed)})


def gcnn_interpret_config(wildcards):
    hyper = {"n_filters": GCNN_INTERP["n_filters"], "n_dense": GCNN_INTERP["n_dense"]}
    if wildcards.model == "rgcnn":
        hyper["n_features"] = GCNN_INTERP["n_features"]
    return gcnn_study_config(wildcards.model, hyper, GCNN_INTERP["train"])


rule gcnn_cp_grid2d_sensitivity_train:
    input:
        GCNN_DATA["cp_grid2d"][1],
    output:
        model=f"{GCNN_CP2D}/sensitivity/{{model}}_f{{filters}}_s{{seed}}/model.json",
    params:
        cfg=gcnn_sensitivity_config,
        store=GCNN_DATA["cp_grid2d"][0],
        out=lambda w: f"{GCNN_CP2D}/sensitivity/{w.model}_f{w.filters}_s{w.seed}",
    wildcard_constraints:
        model="fgcnn|rgcnn",
        filters=r"\d+",
        seed=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(GCNN_SENS["train"]),
        mem_mb=4000,
    log:
        f"{GCNN_CP2D}/logs/sensitivity_{{model}}_f{{filters}}_s{{seed}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn train {params.store} cp_grid2d {wildcards.model} {params.out} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule gcnn_cp_grid2d_sensitivity:
    input:
        expand(f"{GCNN_CP2D}/sensitivity/{{run}}/model.json", run=GCNN_SENS_RUNS),
    output:
        metrics=f"{GCNN_CP2D}/sensitivity/metrics.json",
        table=f"{GCNN_CP2D}/sensitivity/metrics.csv",
        figure=report(f"{GCNN_CP2D}/sensitivity/fig12b_sensitivity.png", caption="../report/gcnn_fig12b_sensitivity.rst",
                      category="gcnn", subcategory="cp_grid2d", labels={"figure": "fig12b_sensitivity"}),
    params:
        runs=" ".join(f"--run {r}={GCNN_CP2D}/sensitivity/{r}" for r in GCNN_SENS_RUNS),
    log:
        f"{GCNN_CP2D}/logs/sensitivity.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn sensitivity {GCNN_CP2D}/sensitivity {params.runs} > {log} 2>&1"


rule gcnn_cp_grid2d_interpret_train:
    input:
        GCNN_DATA["cp_grid2d"][1],
    output:
        model=f"{GCNN_CP2D}/interpret/models/interp_{{model}}/model.json",
    params:
        cfg=gcnn_interpret_config,
        store=GCNN_DATA["cp_grid2d"][0],
        out=lambda w: f"{GCNN_CP2D}/interpret/models/interp_{w.model}",
    wildcard_constraints:
        model="cnn2d|fgcnn|rgcnn",
    threads: 1
    resources:
        gpu=gpu_resource(GCNN_INTERP["train"]),
        mem_mb=4000,
    log:
        f"{GCNN_CP2D}/logs/interpret_train_{{model}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn train {params.store} cp_grid2d {wildcards.model} {params.out} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule gcnn_cp_grid2d_interpret:
    input:
        expand(f"{GCNN_CP2D}/interpret/models/interp_{{model}}/model.json", model=GCNN_INTERP["models"]),
    output:
        metrics=f"{GCNN_CP2D}/interpret/metrics.json",
        table=f"{GCNN_CP2D}/interpret/activation.csv",
        figures=[report(f"{GCNN_CP2D}/interpret/{name}.png", caption=f"../report/gcnn_{key}.rst", category="gcnn",
                        subcategory="cp_grid2d", labels={"figure": key})
                 for name, key in (("fig14_feature_correlation", "fig14_feature_correlation"),
                                   ("fig15_filter_maps", "fig15_filter_maps"))],
        filters=[report(f"{GCNN_CP2D}/interpret/fig16_17_filters_{m}.png", caption="../report/gcnn_fig16_17_filters.rst",
                        category="gcnn", subcategory="cp_grid2d", labels={"figure": f"fig16_17_filters_{m}"})
                 for m in GCNN_INTERP["models"]],
    params:
        store=GCNN_DATA["cp_grid2d"][0],
        models=" ".join(f"--model {m}={GCNN_CP2D}/interpret/models/interp_{m}" for m in GCNN_INTERP["models"]),
        opts=f"--sample {GCNN_INTERP['sample']} --bins {GCNN_INTERP['bins']}",
    log:
        f"{GCNN_CP2D}/logs/interpret.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn interpret {params.store} {GCNN_CP2D}/interpret {params.models} {params.opts} > {log} 2>&1"


rule gcnn_sensitivity_summary:
    input:
        f"{R}/heat2d/sensitivity/metrics.json",
        f"{GCNN_CP2D}/sensitivity/metrics.json",
    output:
        report(f"{R}/summary/field_surrogates_gcnn_sensitivity.md", caption="../report/gcnn_sensitivity_summary.rst",
               category="gcnn", labels={"figure": "sensitivity summary table"}),
    log:
        f"{G}/logs/sensitivity_summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn summary {output} {input} > {log} 2>&1"

