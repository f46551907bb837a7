# RNO experiments of paper 'rno' on composite1d (Fig. 1c-f, 10a) and laminate (Fig. 3a-b):
# one training job per (model, N or case, k), then one evaluation per exemplar, then the summary
# table results/summary/history_surrogates.md. Named targets: rno_composite1d, rno_laminate, rno_all.
# GRU/LSTM baselines (rno.<exemplar>.baseline) join both tables. The laminate studies (transfer,
# hardening, auto-encoder: Fig. 3c-f, 4, 6) are in rno_laminate_studies.smk.

RNO = f"{R}/rno"
RNO_C1D = config["rno"]["composite1d"]
RNO_LAM = config["rno"]["laminate"]


def _rno_train_json(exemplar, baseline=False):
    """The one exemplar's model size and training settings (the rerun triggers of training);
    ``baseline``: also the GRU/LSTM baseline's settings."""
    c = config["rno"][exemplar]
    part = {"width": c["width"], "depth": c["depth"],
            "train": {k: v for k, v in c["train"].items() if k not in ("gpu", "tensorboard")}}
    if c.get("symmetries"):  # only when asked, so models trained without keep their triggers
        part["symmetries"] = c["symmetries"]
    if baseline:
        part["baseline"] = {k: v for k, v in c["baseline"].items() if k != "models"}
    return shlex.quote(json.dumps({"rno": {exemplar: part}}, sort_keys=True))


def _rno_c1d_models():
    names = [f"rno_N{n}_k{k}" for n in RNO_C1D["segments"] for k in RNO_C1D["k"]]
    res = RNO_C1D["resolution"]
    names += [f"{m}_N{res['segments']}_k{res['k']}" for m in res["models"] if m != "rno"]
    names += [f"{m}_N{n}" for n in RNO_C1D["segments"] for m in RNO_C1D["baseline"]["models"]]
    return [f"{RNO}/composite1d/models/{n}/model.json" for n in names]


rule rno_composite1d_train:
    input:
        rules.composite1d_solve.output.summary,
    output:
        model=f"{RNO}/composite1d/models/{{model}}_N{{n}}_k{{k}}/model.json",
    params:
        cfg=_rno_train_json("composite1d"),
        store=f"{R}/datasets/composite1d.zarr",
        out=lambda w: f"{RNO}/composite1d/models/{w.model}_N{w.n}_k{w.k}",
    wildcard_constraints:
        model="rno|rno_ve",
        n=r"\d+",
        k=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(RNO_C1D["train"]),
    log:
        f"{RNO}/composite1d/logs/train_{{model}}_N{{n}}_k{{k}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history train composite1d {params.store} {params.out} --model {wildcards.model} "
        "--group {wildcards.n} --k {wildcards.k} --threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rno_composite1d_baseline_train:
    input:
        rules.composite1d_solve.output.summary,
    output:
        model=f"{RNO}/composite1d/models/{{model}}_N{{n}}/model.json",
    params:
        cfg=_rno_train_json("composite1d", baseline=True),
        store=f"{R}/datasets/composite1d.zarr",
        out=lambda w: f"{RNO}/composite1d/models/{w.model}_N{w.n}",
    wildcard_constraints:
        model="gru|lstm",
        n=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(RNO_C1D["train"]),
    log:
        f"{RNO}/composite1d/logs/train_{{model}}_N{{n}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history train composite1d {params.store} {params.out} --model {wildcards.model} "
        "--group {wildcards.n} --threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rno_composite1d_evaluate:
    input:
        _rno_c1d_models(),
    output:
        metrics=f"{RNO}/composite1d/metrics.json",
        table=report(f"{RNO}/composite1d/metrics.csv", caption="../report/rno_composite1d_metrics.rst",
                     category="rno", subcategory="composite1d", labels={"figure": "test error against k"}),
        figures=[report(f"{RNO}/composite1d/{name}.png", caption=f"../report/rno_{name}.rst", category="rno",
                        subcategory="composite1d", labels={"figure": name}) for name in
                 ("fig1b_predictions", "fig1c_error_vs_k", "fig1d_internal_variable", "fig1ef_learned_f_g",
                  "fig10a_resolution")],
    params:
        cfg=shlex.quote(json.dumps({"rno": {"composite1d": RNO_C1D}}, sort_keys=True)),
        store=f"{R}/datasets/composite1d.zarr",
    log:
        f"{RNO}/composite1d/logs/evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history evaluate composite1d {params.store} {RNO}/composite1d/models {RNO}/composite1d "
        "--resolution --config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_train:
    input:
        f"{LAM}/solve_{{case}}.json",
    output:
        model=f"{RNO}/laminate/models/{{case}}_k{{k}}/model.json",
    params:
        cfg=_rno_train_json("laminate"),
        store=lambda w: f"{R}/datasets/laminate_{w.case}.zarr",
        out=lambda w: f"{RNO}/laminate/models/{w.case}_k{w.k}",
    wildcard_constraints:
        case="|".join(LAM_CASES),
        k=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(RNO_LAM["train"]),
    log:
        f"{RNO}/laminate/logs/train_{{case}}_k{{k}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history train laminate {params.store} {params.out} --k {wildcards.k} --threads {threads} "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_baseline_train:
    input:
        f"{LAM}/solve_{{case}}.json",
    output:
        model=f"{RNO}/laminate/models/{{model}}_{{case}}/model.json",
    params:
        cfg=_rno_train_json("laminate", baseline=True),
        store=lambda w: f"{R}/datasets/laminate_{w.case}.zarr",
        out=lambda w: f"{RNO}/laminate/models/{w.model}_{w.case}",
    wildcard_constraints:
        model="gru|lstm",
        case="|".join(LAM_CASES),
    threads: 1
    resources:
        gpu=gpu_resource(RNO_LAM["train"]),
    log:
        f"{RNO}/laminate/logs/train_{{model}}_{{case}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history train laminate {params.store} {params.out} --model {wildcards.model} --threads {threads} "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_evaluate:
    input:
        expand(f"{RNO}/laminate/models/{{case}}_k{{k}}/model.json", case=RNO_LAM["cases"], k=RNO_LAM["k"]),
        expand(f"{RNO}/laminate/models/{{model}}_{{case}}/model.json", case=RNO_LAM["cases"],
               model=RNO_LAM["baseline"]["models"]),
    output:
        metrics=f"{RNO}/laminate/metrics.json",
        table=report(f"{RNO}/laminate/metrics.csv", caption="../report/rno_laminate_metrics.rst", category="rno",
                     subcategory="laminate", labels={"figure": "test error against k"}),
        figures=[report(f"{RNO}/laminate/{name}.png", caption=f"../report/rno_{name}.rst", category="rno",
                        subcategory="laminate", labels={"figure": name})
                 for name in ("fig3a_error_vs_k", "fig3b_predictions")],
    params:
        cfg=shlex.quote(json.dumps({"rno": {"laminate": RNO_LAM}}, sort_keys=True)),
    log:
        f"{RNO}/laminate/logs/evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history evaluate laminate {R}/datasets {RNO}/laminate/models {RNO}/laminate "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_summary:
    input:
        metrics=[f"{RNO}/composite1d/metrics.json", f"{RNO}/laminate/metrics.json",
                 *([f"{RNO}/laminate/augmented/metrics.json"] if RNO_LAM["augmented"]["cases"] else []),
                 *([f"{RNO}/laminate/resolution/metrics.json"] if RNO_LAM["resolution"]["k"] else []),
                 *(f"{RNO}/laminate/{study}/metrics.json" for study in ("transfer", "hardening", "autoencoder"))],
    output:
        report(f"{R}/summary/history_surrogates.md", caption="../report/rno_summary.rst", category="rno",
               labels={"figure": "summary table"}),
    log:
        f"{RNO}/logs/summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history summary {output} {input.metrics} > {log} 2>&1"


rule rno_composite1d:
    input:
        rules.rno_composite1d_evaluate.output.metrics,


rule rno_laminate:
    input:
        rules.rno_laminate_evaluate.output.metrics,


rule rno_all:
    input:
        rules.rno_summary.output,
