"""The only config machinery: resolve a config by name or path, apply `k=v` overrides, freeze.

A config spec is either an official model name (`sam2.1_hiera_t`, resolved in
`configs/models/sam2.py`) or a path to a Python config file with an optional argument
(`configs/experiments/default.py:runlocal`), whose `get_config(arg)` returns a ConfigDict.
Overrides are `dotted.key=value` strings; values are parsed with `ast.literal_eval` (falling back
to the raw string), an unknown key or a value of the wrong type is an error.
"""

import ast
import difflib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import ml_collections

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
MODELS_FILE = CONFIGS_DIR / "models" / "sam2.py"


def load_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"sam2_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_config(name: str) -> ml_collections.ConfigDict:
    """The (unlocked) model config of an official model name, e.g. `sam2.1_hiera_b+`."""
    return load_module(MODELS_FILE).get_config(name)


def _resolve(spec: str) -> ml_collections.ConfigDict:
    path, _, arg = spec.partition(":")
    if path.endswith(".py"):
        module = load_module(Path(path))
        return module.get_config(arg) if arg else module.get_config()
    return model_config(spec)


def _all_keys(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        keys.append(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            keys.extend(_all_keys(v, prefix + k + "."))
    return keys


def parse_value(text: str) -> Any:
    """`"512"` -> 512, `"(1, 2)"` -> (1, 2), `"True"` -> True, `"bf16"` -> "bf16"."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(cfg: ml_collections.ConfigDict, override: str) -> None:
    """Apply one `a.b.c=value` override in place (cfg must be locked)."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {override!r} is not of the form key=value")
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
        if not isinstance(node, ml_collections.ConfigDict) or p not in node:
            node = None
            break
        node = node[p]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        close = difflib.get_close_matches(key, _all_keys(cfg), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown config key {key!r} in override {override!r}{hint}")
    old = node[leaf]
    value = parse_value(text.strip())
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if old is not None and isinstance(old, ml_collections.ConfigDict):
        raise TypeError(f"override {override!r} would replace the config group {key!r}")
    if old is not None and not isinstance(value, type(old)):
        raise TypeError(
            f"override {override!r}: {key} is a {type(old).__name__} (now {old!r}), "
            f"got {type(value).__name__} {value!r}"
        )
    node[leaf] = value


def load(spec: str, overrides: Iterable[str] = ()) -> ml_collections.FrozenConfigDict:
    """Resolve `spec`, lock it, apply `overrides` in order, return it frozen."""
    cfg = _resolve(spec)
    cfg.lock()
    for o in overrides:
        apply_override(cfg, o)
    return ml_collections.FrozenConfigDict(cfg)
