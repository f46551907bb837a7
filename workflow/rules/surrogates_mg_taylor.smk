# Surrogates of the mg_taylor data (paper rno section 5.2, Fig. 8a-d, 9; paper pcanet SI-C isotropy):
# Taylor solves of classical / calibration / rotated paths, a 3D Johnson-Cook law fitted to the
# calibration tests, RNOs (k sweep, training sizes) and PCA-Nets (training sizes), one evaluation.
# Named target: rno_mg_taylor (NOT in `all`). Logic: homlearn.{datasets.mg_taylor_classical,
# train.mg_taylor, evaluate.mg_taylor}; CLI: homlearn rno_mg_taylor ...

MGX = f"{R}/rno/mg_taylor"
MGX_CFG = config["rno"]["mg_taylor"]
MGX_STORE = f"{R}/datasets/mg_taylor_{MGX_CFG['case']}.zarr"
MGX_SOLVED = f"{R}/mg_taylor/solve_{MGX_CFG['case']}.json"
MGX_NMAX = max(MGX_CFG["train_sizes"])


def _mgx_json(keys, with_data=False):
    """The rno.mg_taylor keys a rule uses (its rerun triggers), plus mg_taylor when it solves."""
    part = {"rno": {"mg_taylor": {k: MGX_CFG[k] for k in keys}}}
    part["rno"]["mg_taylor"]["case"] = MGX_CFG["case"]
    # the case's own entry is always needed (the CLI checks rno.mg_taylor.case against it)
    part["mg_taylor"] = config["mg_taylor"] if with_data else {
        "cases": [c for c in config["mg_taylor"]["cases"] if c["name"] == MGX_CFG["case"]] or config["mg_taylor"]["cases"]}
    return shlex.quote(json.dumps(part, sort_keys=True))


def _mgx_models():
    names = [f"rno_k{k}_n{MGX_NMAX}" for k in MGX_CFG["k"]]
    names += [f"rno_k{MGX_CFG['k_best']}_n{n}" for n in MGX_CFG["train_sizes"]]
    names += [f"pcanet_n{n}" for n in MGX_CFG["train_sizes"]]
    return [f"{MGX}/models/{n}/model.json" for n in dict.fromkeys(names)]


rule rno_mg_taylor_classical:
    input:
        MGX_SOLVED,
    output:
        summary=f"{MGX}/classical.json",
    params:
        cfg=_mgx_json(["calibration", "classical", "isotropy"], with_data=True),
        out=f"{MGX}/classical.zarr",
    threads: 1
    log:
        f"{MGX}/logs/classical.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rno_mg_taylor classical {MGX_STORE} {params.out} --summary {output.summary} "
        "--config-json {params.cfg} --threads {threads} > {log} 2>&1"


rule rno_mg_taylor_jc:
    input:
        rules.rno_mg_taylor_classical.output.summary,
    output:
        model=f"{MGX}/models/jc/model.json",
    params:
        cfg=_mgx_json(["calibration"]),
    log:
        f"{MGX}/logs/jc.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rno_mg_taylor jc {MGX}/classical.zarr {MGX}/models/jc --config-json {params.cfg} > {log} 2>&1"


rule rno_mg_taylor_train_rno:
    input:
        MGX_SOLVED,
    output:
        model=f"{MGX}/models/{{model}}_k{{k}}_n{{n}}/model.json",
    params:
        cfg=_mgx_json(["width", "depth", "train", "target"]),
    wildcard_constraints:
        model="rno|rno_ve",
        k=r"\d+",
        n=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(MGX_CFG["train"]),
    log:
        f"{MGX}/logs/train_{{model}}_k{{k}}_n{{n}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rno_mg_taylor train {MGX_STORE} {MGX}/models/{wildcards.model}_k{wildcards.k}_n{wildcards.n} "
        "--model {wildcards.model} "
        "--k {wildcards.k} --n-train {wildcards.n} --threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rno_mg_taylor_train_pcanet:
    input:
        MGX_SOLVED,
    output:
        model=f"{MGX}/models/pcanet_n{{n}}/model.json",
    params:
        cfg=_mgx_json(["pcanet", "target"]),
    wildcard_constraints:
        n=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(MGX_CFG["pcanet"]["train"]),
    log:
        f"{MGX}/logs/train_pcanet_n{{n}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rno_mg_taylor train {MGX_STORE} {MGX}/models/pcanet_n{wildcards.n} --model pcanet "
        "--n-train {wildcards.n} --threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rno_mg_taylor_evaluate:
    input:
        _mgx_models(),
        rules.rno_mg_taylor_jc.output.model,
        rules.rno_mg_taylor_classical.output.summary,
    output:
        metrics=report(f"{MGX}/metrics.json", caption="../report/rno_mg_taylor_metrics.rst", category="rno",
                       subcategory="mg_taylor", labels={"figure": "metrics"}),
        figures=[report(f"{MGX}/{name}.png", caption=f"../report/rno_mg_taylor_{name}.rst", category="rno",
                        subcategory="mg_taylor", labels={"figure": name})
                 for name in ("fig8a_error_vs_k", "fig8b_error_vs_size", "fig8cd_example", "fig9_classical",
                              "figSI1_isotropy")],
    params:
        cfg=_mgx_json(["k", "k_best", "train_sizes"]),
    threads: 1
    log:
        f"{MGX}/logs/evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rno_mg_taylor evaluate {MGX_STORE} {MGX}/classical.zarr {MGX}/models {MGX} "
        "--config-json {params.cfg} --threads {threads} > {log} 2>&1"


rule rno_mg_taylor:
    input:
        rules.rno_mg_taylor_evaluate.output.metrics,


MGX_RES = MGX_CFG["resolution"]
if config["mg_taylor"]["n_stored"] == config["mg_taylor"]["n_steps"]:  # the training store has every step
    MGX_FINE, MGX_FINE_SOLVED = MGX_STORE, MGX_SOLVED
else:
    MGX_FINE = f"{R}/datasets/mg_taylor_{MGX_CFG['case']}_n{config['mg_taylor']['n_steps']}.zarr"
    MGX_FINE_SOLVED = f"{MG}/resolution/solve_{MGX_CFG['case']}_n{config['mg_taylor']['n_steps']}.json"


def _mgx_resolution_models():
    names = [f"{m}_k{k}_n{MGX_NMAX}" for m in MGX_RES["models"] if m != "pcanet" for k in MGX_RES["k"]]
    names += [f"pcanet_n{MGX_NMAX}"] if "pcanet" in MGX_RES["models"] else []
    return [f"{MGX}/models/{n}/model.json" for n in names]


rule rno_mg_taylor_resolution_evaluate:
    """rno Fig. 10b: the models trained at mg_taylor.n_stored steps, tested at resolution.steps."""
    input:
        MGX_SOLVED,
        MGX_FINE_SOLVED,
        _mgx_resolution_models(),
    output:
        metrics=f"{MGX}/resolution/metrics.json",
        table=f"{MGX}/resolution/metrics.csv",
        figure=report(f"{MGX}/resolution/fig10b_resolution.png", caption="../report/rno_mg_taylor_resolution.rst",
                      category="rno", subcategory="mg_taylor", labels={"figure": "resolution"}),
    params:
        cfg=_mgx_json(["resolution", "train_sizes"], with_data=True),
    threads: 1
    log:
        f"{MGX}/logs/resolution_evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} rno_mg_taylor resolution {MGX_STORE} {MGX_FINE} {MGX}/models {MGX}/resolution "
        "--config-json {params.cfg} --threads {threads} > {log} 2>&1"


rule rno_mg_taylor_resolution:
    input:
        rules.rno_mg_taylor_resolution_evaluate.output.metrics,
