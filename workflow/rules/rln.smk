# Recurrent localization networks of paper 'rln' on elastic_ls: FLN, RLN-t and RLN trained per
# contrast ratio, evaluated per contrast (Table 1, Fig. 6-10, timings), then the summary table
# results/summary/field_surrogates.md. Named targets: rln_all, rln_cr<contrast> (not in 'all').
# With rln.data.source 'own', the RLN gets its own elastic_ls stores (e.g. a coarser grid on CPU);
# otherwise it trains on the elastic_ls stores themselves.

RLN = f"{R}/rln"
RLN_CFG = config["rln"]
RLN_CONTRASTS = [f"{c:g}" for c in RLN_CFG["contrasts"]]
RLN_VARIANTS = ["fln", "rln_t", "rln"]
RLN_OWN_DATA = RLN_CFG["data"]["source"] == "own"
RLN_DATA = {k: v for k, v in RLN_CFG["data"].items() if k != "source"}


def _rln_store(contrast):
    name = "elastic_ls_rln" if RLN_OWN_DATA else "elastic_ls"
    return f"{R}/datasets/{name}_cr{contrast}.zarr"


def _rln_data(wildcards):
    """The solve summary of the store the RLN trains on (its own, or elastic_ls's)."""
    if RLN_OWN_DATA:
        return f"{RLN}/data/solve_cr{wildcards.contrast}.json"
    if wildcards.contrast not in EL_CONTRASTS:
        raise ValueError(f"config key 'rln.contrasts': {wildcards.contrast} is not in elastic_ls.contrasts "
                         f"{EL_CONTRASTS}; add it there or set rln.data for the RLN's own stores")
    return f"{EL}/solve_cr{wildcards.contrast}.json"


def _rln_json(keys):
    part = {k: RLN_CFG[k] for k in keys}
    if "train" in part:
        part["train"] = {k: v for k, v in part["train"].items() if k not in ("gpu", "tensorboard")}
    return shlex.quote(json.dumps({"rln": part}, sort_keys=True))


rule rln_data:
    output:
        summary=f"{RLN}/data/solve_cr{{contrast}}.json",
    params:
        cfg=shlex.quote(json.dumps({"elastic_ls": {**config["elastic_ls"], **RLN_DATA,
                                                   "contrasts": RLN_CFG["contrasts"]},
                                    "dask": config["dask"]}, sort_keys=True)),
        store=lambda w: _rln_store(w.contrast),
    wildcard_constraints:
        contrast="|".join(RLN_CONTRASTS),
    threads: workflow.cores
    resources:
        mem_mb=lambda w, threads: 1500 * max(1, threads),
    log:
        f"{RLN}/logs/data_cr{{contrast}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} elastic_ls solve {wildcards.contrast} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {RLN}/data/failures.jsonl 2> {log}"


rule rln_train:
    input:
        _rln_data,
    output:
        model=f"{RLN}/cr{{contrast}}/models/{{variant}}/model.json",
    params:
        cfg=_rln_json(("iterations", "history", "channels", "train")),
        store=lambda w: _rln_store(w.contrast),
        out=lambda w: f"{RLN}/cr{w.contrast}/models/{w.variant}",
    wildcard_constraints:
        contrast="|".join(RLN_CONTRASTS),
        variant="|".join(RLN_VARIANTS),
    threads: 1
    resources:
        gpu=gpu_resource(RLN_CFG["train"]),
    log:
        f"{RLN}/logs/train_cr{{contrast}}_{{variant}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rln train {params.store} {params.out} --model {wildcards.variant} --threads {threads} "
        "--config-json {params.cfg} > {log} 2>&1"


rule rln_evaluate:
    input:
        lambda w: [f"{RLN}/cr{w.contrast}/models/{v}/model.json" for v in RLN_VARIANTS],
    output:
        metrics=f"{RLN}/cr{{contrast}}/metrics.json",
        table=report(f"{RLN}/cr{{contrast}}/metrics.csv", caption="../report/rln_table1.rst", category="rln",
                     subcategory="elastic_ls CR {contrast}", labels={"figure": "Table 1: test MASE"}),
        figures=[report(f"{RLN}/cr{{contrast}}/{name}.png", caption=f"../report/rln_{name.split('_')[0]}.rst",
                        category="rln", subcategory="elastic_ls CR {contrast}", labels={"figure": name})
                 for name in ("fig6_mase_histogram", "fig7_worst_slice", "fig8_fln_iterates", "fig9_rln_t_iterates",
                              "fig10_rln_iterates")],
    params:
        cfg=_rln_json(("evaluate",)),
        store=lambda w: _rln_store(w.contrast),
    wildcard_constraints:
        contrast="|".join(RLN_CONTRASTS),
    threads: 1
    log:
        f"{RLN}/logs/evaluate_cr{{contrast}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rln evaluate {params.store} {RLN}/cr{wildcards.contrast}/models {RLN}/cr{wildcards.contrast} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rln_summary:
    input:
        metrics=expand(f"{RLN}/cr{{contrast}}/metrics.json", contrast=RLN_CONTRASTS),
    output:
        report(f"{R}/summary/field_surrogates.md", caption="../report/rln_summary.rst", category="rln",
               labels={"figure": "summary table"}),
    log:
        f"{RLN}/logs/summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rln summary {output} {input.metrics} > {log} 2>&1"


for _c in RLN_CONTRASTS:

    rule:
        name:
            f"rln_cr{_c}"
        input:
            f"{RLN}/cr{_c}/metrics.json",


rule rln_all:
    input:
        rules.rln_summary.output,
