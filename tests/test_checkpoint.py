"""Checkpoint reading (torch-free), strict conversion, orbax round trip, the convert CLI."""

import jax
import numpy as np
import pytest
import torch

from sam2_jax import config as config_lib
from sam2_jax.build import abstract_params, build_sam2
from sam2_jax.checkpoint.convert import convert_state_dict, params_to_state_dict
from sam2_jax.checkpoint.formats import load_official_state_dict, load_params
from sam2_jax.checkpoint.torch_file import CheckpointError, load_pt
from sam2_jax.convert import main as convert_main


def _expected(name: str):
    return abstract_params(config_lib.load(name))


def test_torch_free_reader_matches_torch_load(official_t21):
    _, path = official_t21
    ours = load_official_state_dict(path)
    ref = torch.load(path, map_location="cpu", weights_only=True)["model"]
    assert set(ours) == set(ref) and len(ref) == 471
    for k, v in ref.items():
        assert ours[k].dtype == np.float32 and np.array_equal(ours[k], v.numpy()), k


def test_state_dict_round_trip_is_bitwise(official_t21):
    _, path = official_t21
    sd = load_official_state_dict(path)
    params = convert_state_dict(sd, _expected("sam2.1_hiera_t"), "sam2.1_hiera_t")
    back = params_to_state_dict(params)
    assert set(back) == set(sd)
    for k in sd:
        assert back[k].shape == sd[k].shape and np.array_equal(back[k], sd[k]), k


def test_missing_unexpected_and_wrong_config_are_listed(official_t21):
    _, path = official_t21
    sd = load_official_state_dict(path)
    expected = _expected("sam2.1_hiera_t")
    broken = dict(sd)
    del broken["sam_mask_decoder.iou_token.weight"]
    broken["extra.weight"] = np.zeros((2, 3), np.float32)
    with pytest.raises(CheckpointError) as e:
        convert_state_dict(broken, expected, "sam2.1_hiera_t")
    assert "missing: sam_mask_decoder.iou_token.weight (1, 256)" in str(e.value)
    assert "unexpected: extra.weight" in str(e.value)

    with pytest.raises(CheckpointError) as e:  # tiny weights, large config
        convert_state_dict(sd, _expected("sam2.1_hiera_l"), "sam2.1_hiera_l")
    msg = str(e.value)
    assert "wrong shape: image_encoder.trunk.patch_embed.proj.weight" in msg
    assert "looks like 'sam2.1_hiera_t'" in msg

    with pytest.raises(CheckpointError) as e:  # 2.1 weights, 2.0 config
        convert_state_dict(sd, _expected("sam2_hiera_t"), "sam2_hiera_t")
    assert "unexpected: no_obj_embed_spatial" in str(e.value)
    assert "unexpected: obj_ptr_tpos_proj.weight" in str(e.value)


def test_bad_files(tmp_path, official_t21):
    _, path = official_t21
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pt(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_pt(truncated)
    not_official = tmp_path / "weights_only.pt"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, not_official)
    with pytest.raises(CheckpointError, match="not an official SAM 2 checkpoint"):
        load_official_state_dict(not_official)
    pickled_code = tmp_path / "code.pt"
    torch.save({"model": {"a": torch.zeros(1)}, "fn": np.linalg.norm}, pickled_code)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_pt(pickled_code)


def test_convert_cli_writes_orbax_that_loads_identically(tmp_path, official_t21, capsys):
    _, path = official_t21
    out = tmp_path / "converted"
    assert (
        convert_main(["--config", "sam2.1_hiera_t", "--checkpoint", str(path), "--out", str(out)])
        == 0
    )
    expected = _expected("sam2.1_hiera_t")
    from_pt = load_params(path, expected, "sam2.1_hiera_t")
    from_orbax = load_params(out, expected, "sam2.1_hiera_t")
    for a, b in zip(jax.tree.leaves(from_pt), jax.tree.leaves(from_orbax)):
        assert np.array_equal(a, b)
    # An existing output directory is refused and left untouched.
    marker = out / "sam2_jax_meta.json"
    before = marker.read_text()
    assert (
        convert_main(["--config", "sam2.1_hiera_t", "--checkpoint", str(path), "--out", str(out)])
        == 1
    )
    assert "already exists" in capsys.readouterr().err
    assert marker.read_text() == before
    # Wrong model size for an orbax checkpoint: a clear error naming the saved config.
    with pytest.raises(CheckpointError, match="saved for 'sam2.1_hiera_t'"):
        load_params(out, _expected("sam2.1_hiera_s"), "sam2.1_hiera_s")
    # build_sam2 accepts either form.
    model = build_sam2("sam2.1_hiera_t", out)
    assert model.config.name == "sam2.1_hiera_t"
