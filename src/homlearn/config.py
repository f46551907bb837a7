"""Configuration: validation against workflow/schemas/config.schema.yaml, with defaults filled in.

Every run of the workflow (and every CLI command) passes its config through `validate_config`
before any work starts. Errors name the offending key and what is allowed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that does not match the schema; the message lists every offending key."""


def _with_defaults(cls):
    """A validator class that fills `default` values into objects as it validates."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(Draft202012Validator)


def load_schema(path: Path | str = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _describe(error) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"in '{key}'" if error.absolute_path else "at the top level"
        return f"unknown key(s) {extra} {where}; allowed: {allowed}"
    if error.validator == "enum":
        return f"config key '{key}': {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        return f"config key '{key}': {error.instance!r} has the wrong type; expected {error.validator_value}"
    return f"config key '{key}': {error.message}"


def check_schema(config: dict[str, Any], schema: dict) -> dict[str, Any]:
    """Validate `config` in place against `schema` alone (defaults filled in); raise ConfigError."""
    errors = sorted(_DefaultingValidator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "\n  - ".join(_describe(e) for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n  - {lines}")
    return config


def validate_config(config: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    """Validate `config` in place (defaults filled in) and return it; raise ConfigError otherwise."""
    check_schema(config, load_schema() if schema is None else schema)
    _check_semantics(config)
    return config


def _check_semantics(config: dict[str, Any]) -> None:
    """Cross-key rules JSON-schema cannot express."""
    problems = []
    heat = config.get("heat2d", {})
    lo, hi = heat.get("n_grains", [14, 18])
    if lo > hi:
        problems.append(f"config key 'heat2d.n_grains': lower bound {lo} exceeds upper bound {hi}")
    if heat.get("target_cells", 0) > heat.get("max_cells", 1):
        problems.append("config key 'heat2d.target_cells' must not exceed 'heat2d.max_cells'")
    fractions = heat.get("split", {}).get("fractions", [0.7, 0.2, 0.1])
    if abs(sum(fractions) - 1.0) > 1e-9:
        problems.append(f"config key 'heat2d.split.fractions': {fractions} must sum to 1")
    # rno: only checks inside the section (its defaults must stay valid for any composite1d/laminate
    # config; N, cases and steps missing from the datasets are refused when the rules run)
    res = config.get("rno", {}).get("composite1d", {})
    if res and res.get("resolution"):
        if res["resolution"].get("segments") not in res.get("segments", []):
            problems.append("config key 'rno.composite1d.resolution.segments' must be one of rno.composite1d.segments")
        if res["resolution"].get("k") not in res.get("k", []):
            problems.append("config key 'rno.composite1d.resolution.k' must be one of rno.composite1d.k")
    lam = config.get("rno", {}).get("laminate", {})
    for study in ("transfer", "hardening"):  # rno Fig. 3c-f, 6: a case is not trained from itself
        st = lam.get(study, {})
        if st.get("source") in st.get("cases", []):
            problems.append(f"config key 'rno.laminate.{study}.cases' must not contain its source {st['source']!r}")
    res = lam.get("resolution", {})
    if res.get("k"):  # the study's fine store is solved from laminate.path with n_out = max(steps)
        top = max(res["steps"])
        if [s for s in res["steps"] if top % s]:
            problems.append(f"config key 'rno.laminate.resolution.steps': every step must divide the largest "
                            f"({top}), got {res['steps']}")
        n_steps = config.get("laminate", {}).get("path", {}).get("n_steps")
        if n_steps and n_steps % top:
            problems.append(f"config key 'rno.laminate.resolution.steps': the largest ({top}) must divide "
                            f"laminate.path.n_steps ({n_steps})")
        where = "rno.laminate.augmented" if res.get("models") == "augmented" else "rno.laminate"
        family = lam.get("augmented", {}) if res.get("models") == "augmented" else lam
        if res.get("case") not in family.get("cases", []):
            problems.append(f"config key 'rno.laminate.resolution.case': {res.get('case')!r} is not one of "
                            f"{where}.cases {family.get('cases', [])}")
        if [k for k in res["k"] if k not in family.get("k", [])]:
            problems.append(f"config key 'rno.laminate.resolution.k': {res['k']} must be among "
                            f"{where}.k {family.get('k', [])}")
    mgr = config.get("rno", {}).get("mg_taylor", {}).get("resolution", {})
    n_steps = config.get("mg_taylor", {}).get("n_steps")
    if mgr.get("k") and n_steps and [s for s in mgr["steps"] if n_steps % s]:
        problems.append(f"config key 'rno.mg_taylor.resolution.steps': every step must divide mg_taylor.n_steps "
                        f"({n_steps}), got {mgr['steps']}")
    sur = config.get("surrogates_cp_paths2d", {}).get("rno", {})
    if sur and sur.get("example_k") not in sur.get("k", []):
        problems.append("config key 'surrogates_cp_paths2d.rno.example_k' must be one of surrogates_cp_paths2d.rno.k")
    els = config.get("elastic_ls", {})
    for key in ("width_range", "fraction_range"):
        lo, hi = els.get(key, [0, 1])
        if lo > hi:
            problems.append(f"config key 'elastic_ls.{key}': lower bound {lo} exceeds upper bound {hi}")
    if abs(sum(els.get("split", {}).get("fractions", [0.4, 0.2, 0.4])) - 1.0) > 1e-9:
        problems.append("config key 'elastic_ls.split.fractions' must sum to 1")
    ve = config.get("viscoelastic3d", {})
    for key in ("n_inclusions", "radius_range"):
        lo, hi = ve.get(key, [0, 1])
        if lo > hi:
            problems.append(f"config key 'viscoelastic3d.{key}': lower bound {lo} exceeds upper bound {hi}")
    if ve.get("target_cells", 0) > ve.get("max_cells", 1):
        problems.append("config key 'viscoelastic3d.target_cells' must not exceed 'viscoelastic3d.max_cells'")
    if abs(sum(ve.get("split", {}).get("fractions", [0.7, 0.2, 0.1])) - 1.0) > 1e-9:
        problems.append("config key 'viscoelastic3d.split.fractions' must sum to 1")
    vm = ve.get("matrix", {})
    for name, inst, eq in (("shear", "G", "G_inf"), ("bulk", "K", "K_inf")):
        if vm.get(eq, 0) > vm.get(inst, 1):
            problems.append(f"config key 'viscoelastic3d.matrix.{eq}' must not exceed '{inst}'")
        weights = vm.get(f"{name}_weights")
        if weights is not None and (len(weights) != vm.get("n_terms", 20) or not sum(weights) > 0):
            problems.append(f"config key 'viscoelastic3d.matrix.{name}_weights' needs n_terms weights, "
                            "not all zero")
    if vm.get("tau_min", 0) > vm.get("tau_max", 1):
        problems.append("config key 'viscoelastic3d.matrix.tau_min' must not exceed 'tau_max'")
    for section in ("composite1d", "laminate"):  # paper rno sections 3 and 4
        sec = config.get(section, {})
        for key in ("young_range", "exponent_range", "yield_stress_range"):
            lo, hi = sec.get(key, [0, 1])
            if lo > hi:
                problems.append(f"config key '{section}.{key}': lower bound {lo} exceeds upper bound {hi}")
        path = sec.get("path", {})
        if path.get("n_steps", 1) % path.get("n_out", 1):
            problems.append(f"config key '{section}.path.n_out' ({path['n_out']}) must divide "
                            f"'{section}.path.n_steps' ({path['n_steps']})")
        if abs(sum(sec.get("split", {}).get("fractions", [1.0])) - 1.0) > 1e-9:
            problems.append(f"config key '{section}.split.fractions' must sum to 1")
    mg = config.get("mg_taylor", {})
    if mg:
        names = [c["name"] for c in mg.get("cases", [])]
        if len(set(names)) != len(names):
            problems.append(f"config key 'mg_taylor.cases': names must be unique, got {names}")
        if mg.get("n_steps", 1000) % mg.get("n_stored", 200):
            problems.append("config key 'mg_taylor.n_stored' must divide 'mg_taylor.n_steps'")
        if abs(sum(mg.get("split", {}).get("fractions", [0.75, 0.05, 0.2])) - 1.0) > 1e-9:
            problems.append("config key 'mg_taylor.split.fractions' must sum to 1")
    dask = config.get("dask", {})
    if dask.get("cluster") == "address" and not dask.get("address"):
        problems.append("config key 'dask.address' is required when 'dask.cluster' is 'address'")
    if dask.get("cluster") == "slurm":
        problems += _slurm_problems(dask.get("slurm", {}))
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _slurm_problems(slurm: dict[str, Any]) -> list[str]:
    """dask.slurm: processes divide cores, min <= max jobs, workers retire before the walltime."""
    from homlearn.parallel.slurm import worker_lifetime

    out = []
    cores, procs = slurm.get("cores", 1), slurm.get("processes") or slurm.get("cores", 1)
    if cores % procs:
        out.append(f"config key 'dask.slurm.processes' ({procs}) must divide 'dask.slurm.cores' ({cores})")
    if slurm.get("minimum_jobs", 0) > slurm.get("maximum_jobs", 8):
        out.append("config key 'dask.slurm.minimum_jobs' must not exceed 'dask.slurm.maximum_jobs'")
    try:
        worker_lifetime(slurm)
    except (ValueError, KeyError) as exc:
        out.append(str(exc))
    return out


def load_config(path: Path | str) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(config).__name__}")
    return validate_config(config)
