"""train.py: a run killed with SIGKILL and resumed ends bitwise equal to an uninterrupted run;
bad input is named and nothing is overwritten."""

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

from sam2_jax.train.run import main

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "total_steps=6", "batch_size=1", "clip.num_frames=2", "data.num_videos=4",
    "checkpoint.every_steps=2", "eval.every_steps=-1", "log_every=1",
]  # fmt: skip


def _env(tmp_path: Path) -> dict:
    """One device; a persistent compilation cache shared by the runs of a test."""
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


def _command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *extra, *TINY, f"run_dir={run_dir}"]


def _final_params(run_dir: Path):
    restored = ocp.StandardCheckpointer().restore(run_dir / "checkpoints" / "6" / "state")
    return restored["params"]


def test_killed_run_resumes_bitwise(tmp_path):
    env = _env(tmp_path)
    subprocess.run(_command(tmp_path / "a"), cwd=REPO, env=env, check=True,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    proc = subprocess.Popen(_command(tmp_path / "b"), cwd=REPO, env=env,
                            stderr=subprocess.DEVNULL)  # fmt: skip
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
    subprocess.run(_command(tmp_path / "b", "--resume"), cwd=REPO, env=env, check=True,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    a, b = _final_params(tmp_path / "a"), _final_params(tmp_path / "b")
    same = jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)
    assert all(jax.tree.leaves(same)), "the resumed run's params differ from the uninterrupted"
    assert (tmp_path / "b" / "model.json").is_file() and (tmp_path / "b" / "params").is_dir()


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


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    assert main([*TINY, f"run_dir={tmp_path}"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]
