# PCA-Net and RNO experiments on the cp_paths2d store (paper pcanet Fig. 1a, 1d, 1e-g, 2; paper rno
# Fig. 7b-c): one training job per PCA-Net training size and per RNO (part, k), the named test paths
# solved on the same cell, one evaluation job per experiment (figures + metrics_<experiment>.json),
# then the summary table. Named targets (not in `all`): pcanet_cp_paths2d, rno_cp_paths2d,
# surrogates_cp_paths2d. Paper size: --configfile workflow/configs/pcanet_cp_paths2d-paper.yaml.

SUR = f"{R}/surrogates_cp_paths2d"
SUR_CFG = config["surrogates_cp_paths2d"]
SUR_STORE = f"{R}/datasets/cp_paths2d.zarr"
SUR_PARTS = ("pressure", "deviatoric")
#: experiment -> (report category, figures); the figures of homlearn.evaluate.cp_paths2d.EXPERIMENTS
SUR_EXPERIMENTS = {
    "fig1a": ("pcanet", ["fig1a_error_vs_size_epochs"]),
    "fig1d": ("pcanet", ["fig1d_resolution"]),
    "fig1eg": ("pcanet", ["fig1eg_named_paths"]),
    "fig2": ("pcanet", ["fig2_causality"]),
    "fig7bc": ("rno", ["fig7bc_error_vs_k", "fig7e_deviatoric_prediction"]),
}


def _sur_json(*keys, extra=None):
    """The named parts of surrogates_cp_paths2d (training blocks without gpu/tensorboard: they
    change where a job runs, not what it computes), as a shell-quoted JSON argument."""
    part = {}
    for k in keys:
        v = SUR_CFG[k]
        if isinstance(v, dict) and "train" in v:
            v = {**v, "train": {a: b for a, b in v["train"].items() if a not in ("gpu", "tensorboard")}}
        part[k] = v
    return shlex.quote(json.dumps({"surrogates_cp_paths2d": part, **(extra or {})}, sort_keys=True))


def _sur_pcanet(n=None):
    n = max(SUR_CFG["pcanet"]["train_sizes"]) if n is None else n
    return f"{SUR}/models/pcanet_n{n}/model.json"


def _sur_rno(part, k):
    return f"{SUR}/models/rno_{part}_k{k}/model.json"


def _sur_inputs(experiment):
    ex = SUR_CFG["rno"]["example_k"]
    pair = [_sur_rno(p, ex) for p in SUR_PARTS]
    return {"fig1a": [_sur_pcanet(n) for n in SUR_CFG["pcanet"]["train_sizes"]],
            "fig1d": [_sur_pcanet()] + pair,
            "fig1eg": [_sur_pcanet(), f"{SUR}/named_paths.json"] + pair,
            "fig2": [_sur_pcanet()] + pair,
            "fig7bc": [_sur_rno(p, k) for p in SUR_PARTS for k in SUR_CFG["rno"]["k"]]}[experiment]


rule pcanet_cp_paths2d_train:
    input:
        rules.cp_paths2d_solve.output.summary,
    output:
        model=f"{SUR}/models/pcanet_n{{n}}/model.json",
    params:
        cfg=_sur_json("train_steps", "pcanet"),
        out=lambda w: f"{SUR}/models/pcanet_n{w.n}",
    wildcard_constraints:
        n=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(SUR_CFG["pcanet"]["train"]),
    log:
        f"{SUR}/logs/train_pcanet_n{{n}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} cp_paths2d train pcanet {SUR_STORE} {params.out} --n-train {wildcards.n} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rno_cp_paths2d_train:
    input:
        rules.cp_paths2d_solve.output.summary,
    output:
        model=f"{SUR}/models/rno_{{part}}_k{{k}}/model.json",
    params:
        cfg=_sur_json("train_steps", "rno"),
        out=lambda w: f"{SUR}/models/rno_{w.part}_k{w.k}",
    wildcard_constraints:
        part="|".join(SUR_PARTS),
        k=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(SUR_CFG["rno"]["train"]),
    log:
        f"{SUR}/logs/train_rno_{{part}}_k{{k}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} cp_paths2d train rno_{wildcards.part} {SUR_STORE} {params.out} --k {wildcards.k} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule cp_paths2d_named_solve:
    input:
        rules.cp_paths2d_solve.output.summary,
    output:
        summary=f"{SUR}/named_paths.json",
    params:
        cfg=_sur_json("named_paths", extra={"cp_paths2d": config["cp_paths2d"]}),
        store=f"{SUR}/named_paths.zarr",
    threads: 1
    log:
        f"{SUR}/logs/named_paths.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} cp_paths2d named {params.store} --summary {output.summary} --threads {threads} "
        "--config-json {params.cfg} > {log} 2>&1"


for _exp, (_category, _figures) in SUR_EXPERIMENTS.items():

    rule:
        name:
            f"surrogates_cp_paths2d_{_exp}"
        input:
            _sur_inputs(_exp),
        output:
            metrics=f"{SUR}/metrics_{_exp}.json",
            figures=[report(f"{SUR}/{f}.png", caption=f"../report/cp_paths2d_{f}.rst", category=_category,
                            subcategory="cp_paths2d", labels={"figure": f}) for f in _figures],
        params:
            experiment=_exp,
            cfg=_sur_json("train_steps", "pcanet", "rno", "causality"),
            named=f"--named {SUR}/named_paths.zarr" if _exp == "fig1eg" else "",
        log:
            f"{SUR}/logs/evaluate_{_exp}.log",
        conda:
            "../../envs/homlearn.yaml"
        shell:
            "{HOMLEARN} cp_paths2d evaluate {params.experiment} {SUR_STORE} {SUR}/models {SUR} {params.named} "
            "--config-json {params.cfg} > {log} 2>&1"


rule surrogates_cp_paths2d_summary:
    input:
        [f"{SUR}/metrics_{e}.json" for e in SUR_EXPERIMENTS],
    output:
        report(f"{R}/summary/history_surrogates_cp_paths2d.md", caption="../report/cp_paths2d_summary.rst",
               category="pcanet", subcategory="cp_paths2d", labels={"figure": "summary table"}),
    log:
        f"{SUR}/logs/summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history summary {output} {input} > {log} 2>&1"


rule pcanet_cp_paths2d:
    input:
        [f"{SUR}/metrics_{e}.json" for e, (c, _) in SUR_EXPERIMENTS.items() if c == "pcanet"],


rule rno_cp_paths2d:
    input:
        f"{SUR}/metrics_fig7bc.json",


rule surrogates_cp_paths2d:
    input:
        rules.surrogates_cp_paths2d_summary.output,
