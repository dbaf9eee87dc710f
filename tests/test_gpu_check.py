"""benchmarks/gpu_check.py runs on the CPU with --quick, so it cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_measures_every_case_and_writes_its_files(tmp_path, gpu_check) -> None:
    output = tmp_path / "check.json"
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(output.read_text())
    assert summary["mode"] == "quick" and summary["completed"] and not summary["not_run"]
    tests = summary["tests"]
    assert tests["status"] == "passed" and tests["passed"] >= 1 and tests["failed"] == 0
    cases = {(r["section"], r["name"]): r for r in summary["results"]}
    assert set(gpu_check.plan("quick")) <= set(cases)
    assert cases[("nst", "64^2 fp32")]["sign_agreement"] == 1.0
    for precision in ("tf32", "fp16"):  # NVIDIA / GPU only
        assert cases[("nst", f"64^2 {precision}")]["status"] == "n/a"
    bf16 = cases[("nst", "64^2 bf16")]
    assert bf16.get("status") == "n/a" or bf16["sign_agreement"] > 0.99
    measured = [r for r in summary["results"] if "seconds" in r]
    assert len(measured) >= 9 and all(r["seconds"] > 0 for r in measured)
    assert all(r["peak_gib"] > 0 for r in measured)
    table = output.with_suffix(".txt").read_text()
    assert "device tests: passed" in table and "WBP shrec, bin 2 -> 12 x 24 x 24" in table
    assert table == done.stdout


def test_a_worker_past_its_deadline_is_stopped_and_the_results_so_far_kept(gpu_check) -> None:
    code = (
        "import json, time\n"
        "print(json.dumps({'section': 'nst', 'name': 'first'}), flush=True)\n"
        "time.sleep(60)\n"
        "print(json.dumps({'section': 'nst', 'name': 'never'}), flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    saved = []
    started = time.time()
    results = gpu_check.collect(process, started + 2.5, lambda r: saved.append(list(r)))
    assert time.time() - started < 20
    assert [r["name"] for r in results] == ["first", "stopped"]
    assert results[-1]["status"] == "time limit" and saved == [results[:1]]
    assert process.returncode is not None  # killed, not left behind
