"""One configuration surface for every tool in training/: preset files plus `--key=value` overrides.

Preset files are plain Python assignments under training/presets/ (one folder per kind of preset):

    training/presets/<name>.py          training runs (training.train)
    training/presets/scene/<name>.py    scene distributions (SceneConfig fields; training.scenes)

    values = load_preset("smoke")                      # {"base": ...} resolved, "_private" names dropped
    values = load_preset("smoke", kind="scene")        # training/presets/scene/smoke.py
    values = load_preset("/path/to/mine.py")           # any file path

`base = "<name>"` in a preset extends another preset of the same kind; dict values (e.g. `model = dict(...)`)
extend the base preset's dict instead of replacing it.

Overrides come from a command line: `split_argv(["--a=1", "--b", "2", "--flag"])` -> [("a", "1"), ("b", "2"),
("flag", "True")]; values are Python literals (`parse_value`: `--betas="(0.9, 0.95)"`), bare words are strings.
`resolve(defaults, argv, groups)` applies defaults -> `--preset` -> overrides with `assign`, which type-checks
every value against its default (`check_type`) and rejects unknown keys; `groups` maps a dict-valued key to
the field defaults of a dataclass, so `--model.dim=64` is checked against that dataclass's field.
"""
from __future__ import annotations

import ast
import dataclasses
import os

PRESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")


# ----------------------------------------------------------------------------- preset files
def preset_folder(kind: str = "") -> str:
    return os.path.join(PRESETS, kind) if kind else PRESETS


def known_presets(kind: str = "") -> list:
    folder = preset_folder(kind)
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))


def load_preset(name: str, kind: str = "") -> dict:
    """Plain assignments of training/presets/[<kind>/]<name>.py (or of a path ending in .py)."""
    path = name if name.endswith(".py") else os.path.join(preset_folder(kind), f"{name}.py")
    if not os.path.isfile(path):
        what = f"{kind} preset" if kind else "preset"
        raise ValueError(f"unknown {what} {name!r}; known: {known_presets(kind)}")
    scope: dict = {}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), {}, scope)
    values = {k: v for k, v in scope.items() if not k.startswith("_")}
    base = values.pop("base", None)
    out = load_preset(base, kind) if base else {}
    for k, v in values.items():  # dicts extend the base preset's
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            values[k] = {**out[k], **v}
    return {**out, **values}


def dataclass_from_preset(cls, name: str, kind: str, overrides: dict | None = None):
    """`cls(**preset values, **overrides)`; lists become tuples (frozen dataclasses hold tuples); unknown
    field names are a ValueError naming them."""
    values = {**load_preset(name, kind), **dict(overrides or {})}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ----------------------------------------------------------------------------- command-line overrides
def parse_value(text: str):
    """A Python literal, or the text itself (a bare string such as --device=cpu)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_argv(argv) -> list:
    """['--a=1', '--b', '2', '--flag'] -> [('a', '1'), ('b', '2'), ('flag', 'True')]; dashes in plain keys
    become underscores."""
    argv, pairs, i = list(argv), [], 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ValueError(f"expected --key=value, got {tok!r}")
        if "=" in tok:
            k, v = tok[2:].split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            k, v = tok[2:], argv[i + 1]
            i += 1
        else:
            k, v = tok[2:], "True"  # bare boolean flag
        pairs.append((k.replace("-", "_") if "." not in k else k, v))
        i += 1
    return pairs


def check_type(key: str, value, default):
    """value converted to the type of default (int -> float, list -> tuple), or a TypeError naming the key."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, tuple) and isinstance(value, (tuple, list)):
        return tuple(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    raise TypeError(f"{key}={value!r}: expected {type(default).__name__} like the default {default!r}")


def field_defaults(cls) -> dict:
    """{field: default} of a dataclass (None for fields without a plain default)."""
    return {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(cls)}


def assign(cfg: dict, key: str, value, defaults: dict, groups: dict | None = None) -> None:
    """Type-checked `cfg[key] = value`; `group.field` keys (and whole dicts for a group) are checked against
    groups[group] ({field: default}). Unknown keys raise ValueError listing the known ones."""
    groups = groups or {}
    if "." in key:
        group, field = key.split(".", 1)
        known = groups.get(group)
        if known is None or field not in known:
            raise ValueError(f"unknown config key {key!r}" + ("" if known is None else
                                                              f"; {group} fields: {sorted(known)}"))
        cfg[group] = {**cfg[group], field: check_type(key, value, known[field])}
    elif key in groups:
        if not isinstance(value, dict):
            raise TypeError(f"{key}={value!r}: expected a dict of {key} fields (or --{key}.<field>=value)")
        for k, v in value.items():
            assign(cfg, f"{key}.{k}", v, defaults, groups)
    elif key not in defaults:
        raise ValueError(f"unknown config key {key!r}; known: {sorted(defaults)}")
    else:
        cfg[key] = check_type(key, value, defaults[key])


def resolve(defaults: dict, argv=(), groups: dict | None = None, kind: str = "", base: dict | None = None) -> dict:
    """defaults -> `--preset=<name>` (a preset of `kind`) or `base` -> the other `--key=value` overrides."""
    pairs = split_argv(argv)
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    given = dict(pairs)
    start = load_preset(given["preset"], kind) if "preset" in given else (base or {})
    for k, v in start.items():
        assign(cfg, k, v, defaults, groups)
    for k, v in pairs:
        assign(cfg, k, parse_value(v), defaults, groups)
    return cfg


__all__ = ["PRESETS", "assign", "check_type", "dataclass_from_preset", "field_defaults", "known_presets",
           "load_preset", "parse_value", "preset_folder", "resolve", "split_argv"]
