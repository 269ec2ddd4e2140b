"""Config system: official names, every YAML field, overrides and their errors."""

import pytest
import sam2
from omegaconf import OmegaConf
from oracle import OFFICIAL_CONFIG_FILES

from configs.models.sam2 import MODEL_NAMES
from sam2_jax import config as config_lib


def _official_yaml(name: str) -> dict:
    path = f"{sam2.__path__[0]}/{OFFICIAL_CONFIG_FILES[name]}"
    return OmegaConf.to_container(OmegaConf.load(path))["model"]


def _strip_targets(d):
    if isinstance(d, dict):
        return {k: _strip_targets(v) for k, v in d.items() if k != "_target_"}
    return d


# Our names for official YAML fields that move (position encodings are flattened into their
# parent, the fuser layer into `fuser`).
_RENAMES = {
    "image_encoder.neck.position_encoding.num_pos_feats": "image_encoder.neck.pos_num_feats",
    "image_encoder.neck.position_encoding.temperature": "image_encoder.neck.pos_temperature",
    "memory_encoder.position_encoding.num_pos_feats": "memory_encoder.pos_num_feats",
    "memory_encoder.position_encoding.temperature": "memory_encoder.pos_temperature",
}
# YAML fields with fixed values we do not expose (they only select the official behaviour).
_FIXED = {
    "image_encoder.neck.position_encoding.normalize": True,
    "image_encoder.neck.position_encoding.scale": None,
    "memory_encoder.position_encoding.normalize": True,
    "memory_encoder.position_encoding.scale": None,
    "compile_image_encoder": False,
}


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _lookup(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_official_yaml_field_matches(name):
    cfg = config_lib.load(name)
    official = _strip_targets(_official_yaml(name))
    official["memory_encoder"]["fuser"].update(official["memory_encoder"]["fuser"].pop("layer"))
    checked = 0
    for key, value in _flatten(official):
        if key in _FIXED:
            assert value == _FIXED[key], (key, value)
            continue
        ours = _lookup(cfg, _RENAMES.get(key, key))
        if isinstance(value, list):
            value = tuple(value)
        assert ours == value, f"{name}: {key} = {ours!r}, official {value!r}"
        checked += 1
    assert checked > 60


def test_overrides_types_and_errors():
    cfg = config_lib.load(
        "sam2.1_hiera_t", ["image_size=512", "image_encoder.trunk.stages=[1,2,3,4]"]
    )
    assert cfg.image_size == 512 and cfg.image_encoder.trunk.stages == (1, 2, 3, 4)
    with pytest.raises(KeyError, match="did you mean image_size"):
        config_lib.load("sam2.1_hiera_t", ["imag_size=512"])
    with pytest.raises(TypeError, match="image_size is a int"):
        config_lib.load("sam2.1_hiera_t", ["image_size=big"])
    with pytest.raises(ValueError, match="key=value"):
        config_lib.load("sam2.1_hiera_t", ["image_size"])
    with pytest.raises(ValueError, match="unknown model config"):
        config_lib.load("sam3_hiera_t")
    with pytest.raises(FileNotFoundError):
        config_lib.load("no/such/file.py")


def test_frozen_config_is_hashable_and_immutable():
    cfg = config_lib.load("sam2_hiera_l")
    hash(cfg)
    with pytest.raises(AttributeError):
        cfg.image_size = 3
