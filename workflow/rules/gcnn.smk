# GCNN family and CNN baselines on the stress-history exemplars (paper gcnn section 6, Fig. 11-13):
# one model per (exemplar, model), one evaluation per exemplar, and the summary table
# results/summary/field_surrogates_gcnn.md. Named targets: gcnn_<exemplar>, gcnn_all (not in `all`).
# Logic: homlearn.{data.graphs, data.voxels, models.gcnn, models.cnn, train.gcnn, evaluate.gcnn}.

G = f"{R}/gcnn"
GCNN_DATA = {  # exemplar -> (store, the solve stage's summary that finishes it)
    "cp_grid2d": (f"{R}/datasets/cp_grid2d.zarr", f"{R}/cp_grid/solve_2d.json"),
    "cp_grid3d": (f"{R}/datasets/cp_grid3d.zarr", f"{R}/cp_grid/solve_3d.json"),
    "viscoelastic3d": (f"{R}/datasets/viscoelastic3d.zarr", f"{R}/viscoelastic3d/solve.json"),
}
GCNN_MODELS = {ex: config["gcnn"][ex]["run"] for ex in GCNN_DATA}


def gcnn_train_config(wildcards):
    """The exemplar's data options, training settings and this one model's hyperparameters."""
    sec = config["gcnn"][wildcards.exemplar]
    part = {"data": sec["data"], "head": sec["head"], "train": {k: v for k, v in sec["train"].items() if k != "gpu"},
            "models": {wildcards.model: sec["models"].get(wildcards.model, {})},
            "collapse_restarts": sec["collapse_restarts"]}
    return shlex.quote(json.dumps({"gcnn": {wildcards.exemplar: part}}, sort_keys=True))


rule gcnn_train:
    input:
        lambda w: GCNN_DATA[w.exemplar][1],
    output:
        model=f"{G}/{{exemplar}}/models/{{model}}/model.json",
    params:
        cfg=gcnn_train_config,
        store=lambda w: GCNN_DATA[w.exemplar][0],
        out=lambda w: f"{G}/{w.exemplar}/models/{w.model}",
    wildcard_constraints:
        exemplar="|".join(GCNN_DATA),
        model="[a-z0-9]+",
    threads: 1
    resources:
        gpu=lambda w: gpu_resource(config["gcnn"][w.exemplar]["train"]),
        mem_mb=4000,
    log:
        f"{G}/{{exemplar}}/logs/train_{{model}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn train {params.store} {wildcards.exemplar} {wildcards.model} {params.out} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule gcnn_evaluate:
    input:
        lambda w: expand(f"{G}/{w.exemplar}/models/{{model}}/model.json", model=GCNN_MODELS[w.exemplar]),
    output:
        metrics=f"{G}/{{exemplar}}/metrics.json",
        figures=[report(f"{G}/{{exemplar}}/{name}.png", caption=f"../report/gcnn_{key}.rst", category="gcnn",
                        subcategory="{exemplar}", labels={"figure": key})
                 for name, key in (("fig11_{exemplar}", "fig11"),
                                   ("fig13_{exemplar}_error_distribution", "fig13_error_distribution"),
                                   ("{exemplar}_examples", "examples"))],
    params:
        store=lambda w: GCNN_DATA[w.exemplar][0],
        models=lambda w: " ".join(f"--model {m}={G}/{w.exemplar}/models/{m}" for m in GCNN_MODELS[w.exemplar])
        + f" --n-examples {config['gcnn'][w.exemplar]['evaluate']['n_examples']}",
    wildcard_constraints:
        exemplar="|".join(GCNN_DATA),
    log:
        f"{G}/{{exemplar}}/logs/evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn evaluate {wildcards.exemplar} {params.store} {G}/{wildcards.exemplar} {params.models} "
        "> {log} 2>&1"


rule gcnn_summary:
    input:
        [f"{G}/{ex}/metrics.json" for ex in GCNN_DATA],
    output:
        report(f"{R}/summary/field_surrogates_gcnn.md", caption="../report/gcnn_summary.rst", category="gcnn",
               labels={"figure": "summary table"}),
    log:
        f"{G}/logs/summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} gcnn summary {output} {input} > {log} 2>&1"


for _ex in GCNN_DATA:

    rule:
        name:
            f"gcnn_{_ex}"
        input:
            f"{G}/{_ex}/metrics.json",


rule gcnn_all:
    input:
        rules.gcnn_summary.output,
