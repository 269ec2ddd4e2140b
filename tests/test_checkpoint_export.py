"""Our params -> official `.pt` (torch-free writer): bitwise round trip, official strict load, CLI.

Tolerance: exact (0.0). The exported file holds bit-identical tensors, so the official model
built from it computes exactly what the model it was saved from computes.
"""

import json

import numpy as np
import pytest
import torch
from oracle import OFFICIAL_CONFIG_FILES, assert_close
from safetensors.numpy import save_file

from sam2_jax import config as config_lib
from sam2_jax.build import abstract_params
from sam2_jax.checkpoint.export import export_official_checkpoint, save_state_dict_pt
from sam2_jax.checkpoint.formats import load_official_state_dict, load_params
from sam2_jax.checkpoint.hf import hf_config_fields, official_to_hf
from sam2_jax.convert import main as convert_main

EXACT = 0.0  # same weights, same official code
NAME = "sam2.1_hiera_t"
SIZE = 256  # the image size of the `official_t21` fixture


def _official_from_checkpoint(path):
    """The official builder with its strict `_load_checkpoint`, as the fixture's model."""
    from sam2.build_sam import build_sam2 as official_build_sam2

    model = official_build_sam2(
        OFFICIAL_CONFIG_FILES[NAME],
        str(path),
        device="cpu",
        mode="eval",
        hydra_overrides_extra=[f"++model.image_size={SIZE}"],
    )
    return model


def _torch_state_dict(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _assert_bitwise(path, reference_path):
    got, want = _torch_state_dict(path), _torch_state_dict(reference_path)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].is_contiguous(), k
        assert got[k].shape == v.shape and got[k].numpy().tobytes() == v.numpy().tobytes(), k
    return got


@pytest.fixture(scope="module")
def params_t21(official_t21):
    """Our params read from the fixture's official .pt."""
    return load_params(official_t21[1], abstract_params(config_lib.load(NAME)), NAME)


def test_pt_to_ours_to_pt_is_bitwise(official_t21, params_t21, tmp_path):
    _, pt = official_t21
    params = params_t21
    out = export_official_checkpoint(params, tmp_path / "exported.pt")
    got = _assert_bitwise(out, pt)
    assert len(got) == 471
    # Our torch-free reader reads it back to the same params; `{"params": ...}` is accepted.
    again = load_official_state_dict(out)
    assert all(np.array_equal(again[k], v.numpy()) for k, v in got.items())
    wrapped = {"params": params}  # as SAM2Model.params
    _assert_bitwise(export_official_checkpoint(wrapped, tmp_path / "again.pt"), pt)


def test_official_build_loads_the_export_and_computes_the_same(official_t21, params_t21, tmp_path):
    official, _ = official_t21
    rebuilt = _official_from_checkpoint(export_official_checkpoint(params_t21, tmp_path / "e.pt"))
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, SIZE, SIZE, generator=gen)
    points = {
        "point_coords": torch.tensor([[[0.3 * SIZE, 0.6 * SIZE]]]),
        "point_labels": torch.tensor([[1]], dtype=torch.int32),
    }
    outs = []
    with torch.no_grad():
        for model in (official, rebuilt):
            bb = model.forward_image(image)
            _, feats, _, sizes = model._prepare_backbone_features(bb)
            maps = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats, sizes)]
            heads = model._forward_sam_heads(
                backbone_features=maps[-1] + model.no_mem_embed.view(1, -1, 1, 1),
                point_inputs=points,
                high_res_features=maps[:-1],
                multimask_output=True,
            )
            outs.append((bb["vision_features"], *heads))
    names = ("vision_features", "low_res_multimasks", "high_res_multimasks", "ious")
    names += ("low_res_masks", "high_res_masks", "obj_ptr", "object_score_logits")
    for name, a, b in zip(names, outs[1], outs[0]):
        assert_close(a, b, EXACT, f"official from export vs original {name}")


def test_cli_exports_pt_orbax_and_hf(official_t21, tmp_path, capsys):
    _, pt = official_t21
    out = tmp_path / "from_pt.pt"
    assert convert_main(["--config", NAME, "--checkpoint", str(pt), "--export-pt", str(out)]) == 0
    _assert_bitwise(out, pt)
    # orbax -> .pt
    orbax = tmp_path / "orbax"
    assert convert_main(["--config", NAME, "--checkpoint", str(pt), "--out", str(orbax)]) == 0
    from_orbax = tmp_path / "from_orbax.pt"
    argv = ["--config", NAME, "--checkpoint", str(orbax), "--export-pt", str(from_orbax)]
    assert convert_main(argv) == 0
    _assert_bitwise(from_orbax, pt)
    # HF directory (written here with the numpy safetensors API) -> .pt, config from config.json.
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    save_file(official_to_hf(load_official_state_dict(pt)), hf_dir / "model.safetensors")
    config = {"model_type": "sam2_video", **hf_config_fields(NAME)}
    (hf_dir / "config.json").write_text(json.dumps(config))
    from_hf = tmp_path / "from_hf.pt"
    assert convert_main(["--checkpoint", str(hf_dir), "--export-pt", str(from_hf)]) == 0
    assert f"({NAME})" in capsys.readouterr().out
    _assert_bitwise(from_hf, pt)
    # An existing output file is refused and left untouched.
    before = out.read_bytes()
    assert convert_main(["--checkpoint", str(hf_dir), "--export-pt", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    # Without a HF config.json the config name is required.
    assert convert_main(["--checkpoint", str(pt), "--export-pt", str(tmp_path / "x.pt")]) == 1
    assert "--config is required" in capsys.readouterr().err


def test_writer_refuses_overwrite_and_unknown_dtypes(tmp_path):
    path = tmp_path / "a.pt"
    save_state_dict_pt({"x": np.arange(3, dtype=np.int64), "s": np.float32(2.0)}, path)
    got = _torch_state_dict(path)
    assert torch.equal(got["x"], torch.arange(3)) and got["s"].shape == () and got["s"] == 2.0
    with pytest.raises(FileExistsError, match="already exists"):
        save_state_dict_pt({"x": np.zeros(1, np.float32)}, path)
    with pytest.raises(ValueError, match="no torch storage type"):
        save_state_dict_pt({"x": np.zeros(1, np.complex64)}, tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()
