"""train.py: a run killed with SIGKILL and resumed ends bitwise equal to an uninterrupted run;
the sweep runner runs train.py per override set and collects the table; bad input is named and
nothing is overwritten. The subprocesses share one compilation cache (same program)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from sam2_jax import config as config_lib
from sam2_jax import sweep
from sam2_jax.build import abstract_params, build_sam2, init_params
from sam2_jax.checkpoint.export import export_official_checkpoint
from sam2_jax.train.run import DEFAULT_CONFIG, FINAL_METRICS, export, initial_model, main

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "total_steps=6", "batch_size=1", "clip.num_frames=2", "data.num_videos=4",
    "checkpoint.every_steps=2", "eval.every_steps=-1", "log_every=1",
    "init_read_out_clips=0",  # fitted in tests/train/test_memory_probe.py
]  # fmt: skip


@pytest.fixture(scope="module")
def subprocess_env(compilation_cache_env) -> dict:
    """One device; a persistent compilation cache shared by the train.py runs of this module."""
    return {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", **compilation_cache_env}


def _command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *extra, *TINY, f"run_dir={run_dir}"]


def _final_params(run_dir: Path):
    restored = ocp.StandardCheckpointer().restore(run_dir / "checkpoints" / "6" / "state")
    return restored["params"]


def test_killed_run_resumes_bitwise(tmp_path, subprocess_env):
    """Run from another folder with relative run_dirs, as a user would. The run to kill compiles
    first; the uninterrupted run and the resumption then run side by side from the cache."""
    env = {**os.environ, **subprocess_env}

    def start(*command: str) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)

    proc = start(*_command(Path("b")))
    first = tmp_path / "b" / "checkpoints" / "2"
    deadline = time.monotonic() + 600
    while not first.is_dir() and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = sorted(
        int(p.name) for p in (tmp_path / "b" / "checkpoints").iterdir() if p.name.isdigit()
    )
    assert 2 in steps and 6 not in steps, steps
    runs = [start(*_command(Path("a"))), start(*_command(Path("b"), "--resume"))]
    assert [run.wait() for run in runs] == [0, 0]
    a, b = _final_params(tmp_path / "a"), _final_params(tmp_path / "b")
    same = jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)
    assert all(jax.tree.leaves(same)), "the resumed run's params differ from the uninterrupted"
    assert (tmp_path / "b" / "model.json").is_file() and (tmp_path / "b" / "params").is_dir()


def test_sweep_runs_each_override_set_and_collects_the_table(tmp_path, subprocess_env, monkeypatch):
    for k, v in subprocess_env.items():
        monkeypatch.setenv(k, v)
    spec = tmp_path / "seeds.py"
    spec.write_text(
        "from sam2_jax.sweep import grid\n\ndef get_sweep():\n    return grid(seed=[1, 2])\n"
    )
    out = tmp_path / "sweep"
    argv = [str(spec), "--out", str(out), "--parallel", "2", *TINY]
    assert sweep.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["run"] for r in rows] == ["00_seed=1", "01_seed=2"]
    assert [r["overrides"] for r in rows] == [["seed=1"], ["seed=2"]]
    for r in rows:
        final = json.loads((out / r["run"] / FINAL_METRICS).read_text())
        assert r["status"] == "done" and r["core_loss"] == final["core_loss"] > 0
        assert json.loads((out / r["run"] / "config.json").read_text())["total_steps"] == 6
    assert rows[0]["core_loss"] != rows[1]["core_loss"]  # other seed, other data and weights
    assert "| 00_seed=1 | seed=1 | done |" in (out / "results.md").read_text()
    logs = [(out / r["run"] / "train.log").stat().st_size for r in rows]
    assert sweep.main(argv) == 0  # finished runs are not run again
    assert [(out / r["run"] / "train.log").stat().st_size for r in rows] == logs


def test_sweep_checks_every_override_set_before_starting(tmp_path, capsys):
    spec = tmp_path / "bad.py"
    spec.write_text("def get_sweep():\n    return [{'seed': 1}, {'optimizer.base_rl': 1e-4}]\n")
    assert sweep.main([str(spec), "--out", str(tmp_path / "sweep"), *TINY]) == 2
    assert "optimizer.base_rl" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("no_such_key=1", "no_such_key"),
        ("total_steps='many'", "total_steps"),
        ("data.source=png", "does not exist"),
        ("clip.image_size=256", "clip.image_size=256"),
        ("nan_policy=ignore", "nan_policy"),
    ],
)
def test_bad_config_is_named(tmp_path, capsys, override, message):
    assert main([*TINY, f"run_dir={tmp_path}", "data.root=/nonexistent", override]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def official_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Official-format `.pt` files: random weights of the default model, zeros of another size
    (its shapes are what matters)."""
    folder = tmp_path_factory.mktemp("pt")
    cfg = config_lib.load(DEFAULT_CONFIG)
    params = {
        cfg.model: init_params(config_lib.load(cfg.model, cfg.model_overrides), 3),
        "sam2.1_hiera_t": jax.tree.map(lambda x: np.zeros(x.shape, x.dtype),
                                       abstract_params(config_lib.load("sam2.1_hiera_t"))),
    }  # fmt: skip
    return {
        name: export_official_checkpoint(p, folder / f"{name}.pt") for name, p in params.items()
    }


def test_init_from_an_official_checkpoint(official_checkpoints):
    path = official_checkpoints[config_lib.load(DEFAULT_CONFIG).model]
    cfg = config_lib.load(DEFAULT_CONFIG, [f"init_from={path}"])
    model = initial_model(cfg, cfg.model_overrides)
    expected = init_params(config_lib.load(cfg.model, cfg.model_overrides), seed=3)
    same = jax.tree.map(np.array_equal, model.params["params"], expected)
    assert all(jax.tree.leaves(same))


def test_a_later_export_replaces_the_params(tmp_path):
    """Periodic evals export the params again: model.json then loads the newest ones."""
    cfg = config_lib.load(DEFAULT_CONFIG)
    for seed in (1, 2):
        params = init_params(config_lib.load(cfg.model, cfg.model_overrides), seed=seed)
        export(tmp_path, cfg, params)
    model_json = json.loads((tmp_path / "model.json").read_text())
    loaded = build_sam2(model_json["config"], model_json["checkpoint"], model_json["overrides"])
    same = jax.tree.map(np.array_equal, loaded.params["params"], params)
    assert all(jax.tree.leaves(same))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "params"]


def test_checkpoint_of_another_size_is_named(tmp_path, capsys, official_checkpoints):
    path = official_checkpoints["sam2.1_hiera_t"]
    assert main([*TINY, f"run_dir={tmp_path}", f"init_from={path}"]) == 2
    assert "sam2.1_hiera_t" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_zero_steps_export_the_initial_model(tmp_path):
    assert main([*TINY, f"run_dir={tmp_path}", "total_steps=0"]) == 0
    cfg = config_lib.load(DEFAULT_CONFIG, [*TINY, "total_steps=0"])
    model_json = json.loads((tmp_path / "model.json").read_text())
    loaded = build_sam2(model_json["config"], model_json["checkpoint"], model_json["overrides"])
    initial = initial_model(cfg, cfg.model_overrides)
    same = jax.tree.map(np.array_equal, loaded.params["params"], initial.params["params"])
    assert all(jax.tree.leaves(same))
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    assert main([*TINY, f"run_dir={tmp_path}"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]


@pytest.mark.parametrize(
    "override, named",
    [("init_scheme=orthogonal", "orthogonal"), ("frozen=('image_encoder', 'trunk')", "trunk")],
)
def test_unknown_init_scheme_or_frozen_module_is_named(tmp_path, capsys, override, named):
    assert main([*TINY, f"run_dir={tmp_path}", override]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())
