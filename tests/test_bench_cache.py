"""bench.common.official_result: the official side's results are reused only for the same case,
torch and sam2 versions, hardware and threads (the benchmarks themselves never run as tests)."""

import json

import torch

from bench.common import official_result


def test_official_result_reused_for_the_same_case_and_versions(tmp_path, monkeypatch):
    cache = tmp_path / "official_cache.json"
    measured = []

    def measure() -> dict:
        measured.append(1)
        return {"seconds": float(len(measured))}

    case = {"bench": "video_fps", "size": 512}
    assert official_result(cache, case, "cpu", measure) == {"seconds": 1.0, "cached": False}
    assert official_result(cache, case, "cpu", measure) == {"seconds": 1.0, "cached": True}
    other_case = {**case, "size": 1024}
    assert official_result(cache, other_case, "cpu", measure) == {"seconds": 2.0, "cached": False}
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert official_result(cache, case, "cpu", measure) == {"seconds": 3.0, "cached": False}
    torch.set_num_threads(torch.get_num_threads() + 1)
    try:
        assert official_result(cache, case, "cpu", measure)["cached"] is False
    finally:
        torch.set_num_threads(torch.get_num_threads() - 1)
    assert len(json.loads(cache.read_text())) == 4
    assert official_result(None, case, "cpu", measure) == {"seconds": 5.0, "cached": False}
