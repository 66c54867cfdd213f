"""The benchmark scripts: the PPO throughput smoke run, the nn.scan SHM baseline, merged memory_speed runs."""

import json
from pathlib import Path

import pytest

from benchmarks import learner_throughput, memory_speed_report, ppo_throughput, tables
from benchmarks.memory_speed import TARGETS, merge_records

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.mark.slow
def test_ppo_throughput_quick_writes_json_and_table(tmp_path):
    path = ppo_throughput.main(["--quick", "--memories", "shm", "gru", "--repeats", "1", "--out", str(tmp_path)])
    record = json.loads(path.read_text())
    assert path.name.startswith("ppo_throughput_") and path.name.endswith("_quick.json")
    assert record["benchmark"] == "ppo_throughput"
    for key in ("cpu_model", "cpu_count", "backend", "device_kind"):
        assert record["host"][key]
    assert record["versions"]["jax"] and "git_commit" in record
    assert len(record["load_average_start"]) == 3 and len(record["load_average_end"]) == 3
    settings = record["settings"]
    assert settings["preset"] == "paper-popgym" and settings["quick"] is True
    assert settings["steps_per_update"] == settings["num_envs"] * settings["num_steps"]

    rows = {r["label"]: r for r in record["results"]}
    assert set(rows) == {"shm", "gru"}
    for row in rows.values():
        assert row["status"] == "ok", row
        assert row["finite"]
        assert row["steps_per_s"] == pytest.approx(settings["steps_per_update"] / row["time_s_median"])
        assert 0 < row["rollout_s"] and row["compile_s"] > 0
    h = settings["sizes"][0]
    assert rows["shm"]["state_floats_per_env"] == h * h and rows["gru"]["state_floats_per_env"] == h
    (ratio,) = record["ratios"]
    assert ratio["baseline"] == "gru"
    expected = rows["shm"]["steps_per_s"] / rows["gru"]["steps_per_s"]
    assert ratio["shm_over_baseline_steps_per_s"] == pytest.approx(expected)
    update_ratio = rows["shm"]["update_s"] / rows["gru"]["update_s"]
    assert ratio["target"] == 3.0 and ratio["meets_target"] == (update_ratio <= 3.0)

    (table_path,) = tmp_path.glob("ppo_throughput*_quick.md")
    table = table_path.read_text()
    assert f"| shm | {h} | " in table and f"| gru | {h} | " in table
    assert f"| {h} | {h * h} | gru | {h} | {ratio['shm_over_baseline_steps_per_s']:.2f} |" in table


def test_ppo_throughput_cases_skip_a_gru_too_large_for_equal_state():
    scale = ppo_throughput.FULL
    by_key = {(c.label, c.size): c for c in ppo_throughput.cases(scale, ppo_throughput.MEMORIES)}
    assert by_key[("gru-equal-state", 32)].memory_kwargs == {"hidden_size": 1024}
    big = by_key[("gru-equal-state", 128)]
    assert big.memory_kwargs is None and "16384" in big.why_not
    assert by_key[("shm", 128)].memory_kwargs["memory_size"] == 128
    assert by_key[("shm", 32)].memory_kwargs["projection_size"] == 1024  # the paper's output projection
    assert [c.size for c in by_key.values() if c.label == "ffm"] == [128]  # FFM does not follow H: once
    with pytest.raises(ValueError, match="memories"):
        ppo_throughput.cases(scale, ("lstm",))


@pytest.mark.slow
def test_nn_scan_baseline_computes_the_library_shm():
    from benchmarks.linen_shm_cell import compare_with_shm

    check = compare_with_shm()
    assert check["output_scale"] > 0.1 and check["input_grad_scale"] > 0.01  # not a vacuous comparison
    assert check["output"] < 1e-5 * check["output_scale"]
    assert check["memory"] < 1e-5
    assert check["input_grad"] < 1e-5 * check["input_grad_scale"]


def _row(label, t, h, seconds, mib, status="ok"):
    row = {
        "label": label,
        "family": "shm" if label != memory_speed_report.NN_SCAN_LABEL else "shm-baseline",
        "T": t,
        "H": h,
        "B": 8,
        "status": status,
        "memory": {"peak_estimate": int(mib * 2**20)},
        "compile_s": 1.0,
    }
    if status == "ok":
        row.update(time_s_median=seconds, time_s_min=seconds, time_s_all=[seconds], per_step_us=seconds / t * 1e6)
    return row


def test_merged_rows_keep_their_run_and_the_target_pairs_rows_of_one_run():
    existing = json.loads((RESULTS / "memory_speed_cpu.json").read_text())  # the committed run, without merges
    existing["results"] = [r for r in existing["results"] if r.get("run", 0) == 0]
    existing.pop("merged_runs", None)
    existing["checks"].pop("nn_scan_equals_shm", None)
    first_seq = next(
        r for r in existing["results"] if r["label"] == "shm/sequential-64" and r["T"] == 1024 and r["H"] == 128
    )
    new = {
        "timestamp_utc": "t1",
        "git_commit": "abc",
        "load_average_start": [1.0, 1.0, 1.0],
        "load_average_end": [2.0, 2.0, 2.0],
        "wall_s": 3.0,
        "settings": {"only": "^shm/sequential"},
        "host": existing["host"],
        "checks": {
            "nn_scan_equals_shm": {
                "output": 1e-7,
                "output_scale": 1.0,
                "memory": 1e-7,
                "input_grad": 1e-8,
                "input_grad_scale": 0.1,
                "ok": True,
            }
        },
        "results": [
            _row("shm/sequential-64", 1024, 128, 0.4, 100),
            _row("shm/sequential-256", 1024, 128, 0.6, 50),
            _row(memory_speed_report.NN_SCAN_LABEL, 1024, 128, 1.6, 1000),
            _row("shm/sequential-64", 4096, 128, 1.6, 120),
            _row(memory_speed_report.NN_SCAN_LABEL, 4096, 128, None, 4000, status="skipped"),
        ],
    }
    merged = merge_records(existing, new)
    assert len(merged["results"]) == len(existing["results"]) + 5
    assert {r["run"] for r in merged["results"][: len(existing["results"])]} == {0}
    assert merged["merged_runs"][0]["git_commit"] == "abc"
    assert "nn_scan_equals_shm" in merged["checks"] and "torch_equals_jax" in merged["checks"]
    # The grid tables keep the first run's row where a label was measured twice.
    assert (
        tables.ok_by_key(merged["results"])[("shm/sequential-64", 1024, 128)]["time_s_median"]
        == first_seq["time_s_median"]
    )

    rows = {(r["T"], r["H"]): r for r in memory_speed_report.memory_target_rows(merged)}
    target = rows[(1024, 128)]
    assert target["run"] == 1 and target["lean"]["label"] == "shm/sequential-64"  # fastest of run 1, not run 0
    assert target["speedup"] == pytest.approx(4.0)
    assert target["memory_ratio"] == pytest.approx(0.1)
    assert target["meets_time"] and target["meets_memory"]
    skipped = rows[(4096, 128)]  # baseline skipped: no time, memory from its compiled estimate
    assert skipped["speedup"] is None and skipped["memory_ratio"] == pytest.approx(0.03)
    table = memory_speed_report.markdown(merged)
    assert "## Memory target" in table and "run 1: t1" in table and "time yes, memory yes" in table


def test_memory_target_reports_a_miss():
    record = {
        "targets": TARGETS,
        "results": [
            _row("shm/sequential-64", 1024, 128, 0.9, 300),
            _row(memory_speed_report.NN_SCAN_LABEL, 1024, 128, 1.5, 1000),
        ],
    }
    (row,) = memory_speed_report.memory_target_rows(record)
    assert row["meets_time"] is False and row["meets_memory"] is False


def test_memorax_rows_pair_each_calibration_with_the_library_row_of_the_same_run_and_size():
    theirs, ours = memory_speed_report.MEMORAX_LABEL, memory_speed_report.MEMORAX_PARTNER
    record = {
        "targets": TARGETS,
        "results": [
            _row(theirs, 1024, 128, 1.0, 50),
            _row(ours, 1024, 128, 0.35, 20),
            _row(f"{theirs}-fixed-theta", 1024, 128, 1.0, 50),
            _row(f"{ours}-fixed-theta", 1024, 128, 0.5, 20),
            _row(ours, 256, 128, 0.1, 5),  # no memorax row at T = 256: unpaired
            {**_row(theirs, 1024, 128, 2.0, 50), "run": 1},  # a later run without its partner row
        ],
    }
    rows = memory_speed_report.memorax_rows(record)
    assert [(r["variant"], r["run"], r["T"]) for r in rows] == [("fixed-theta", 0, 1024), ("random θ", 0, 1024)]
    fixed, random = rows
    assert fixed["ratio"] == pytest.approx(0.5) and not fixed["meets_target"]
    assert random["ratio"] == pytest.approx(0.35) and random["meets_target"]
    assert "| 0 | random θ | 128 | 1024 |" in "\n".join(memory_speed_report._memorax_section(record))


def test_every_benchmark_records_host_versions_commit_and_load_through_one_header():
    import time

    from benchmarks.common import close_record, record_header

    record = close_record(record_header("probe"), began=time.perf_counter() - 2.0)
    assert record["benchmark"] == "probe" and record["versions"]["jax"] and record["host"]["cpu_count"] >= 1
    assert len(record["load_average_start"]) == 3 and len(record["load_average_end"]) == 3
    assert record["wall_s"] >= 2.0
    for script in ("env_throughput", "memory_speed", "ppo_throughput", "roofline", "stop_latency"):
        source = (Path(__file__).resolve().parents[1] / "benchmarks" / f"{script}.py").read_text()
        assert "from benchmarks.common import" in source, script
        assert "getloadavg" not in source and "def versions" not in source and 'git", "rev-parse' not in source


def test_timed_calls_stops_early_once_the_time_budget_is_spent_but_not_before_three_calls():
    import time

    from benchmarks.common import timed_calls

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)
        return 0

    times = timed_calls(slow, repeats=10, max_total_s=0.01)
    assert len(times) == len(calls) == 3 and all(t >= 0.05 for t in times)
    assert len(timed_calls(lambda: 0, repeats=4)) == 4


# What record_header would write, for tables built from hand-made records.
FAKE_HEADER = {
    "host": {"cpu_model": "cpu", "cpu_count": 2},
    "timestamp_utc": "t",
    "git_commit": "c",
    "load_average_start": [1.0],
    "load_average_end": [1.0],
}


def test_learner_throughput_table_reads_the_target_from_the_record():
    def row(algo, memory, steps):
        return {"algo": algo, "memory": memory, "memory_kwargs": {}, "steps_per_s": steps}

    record = {
        **FAKE_HEADER,
        "settings": {"env_id": "RepeatFirstEasy", "shape": {}, "updates_per_call": 2, "repeats": 3},
        "targets": {"min_pqn_over_ppo_steps_per_s": 1.0},
        "results": [
            row("ppo", "shm", 1000.0),
            row("pqn", "shm", 1500.0),
            row("ppo", "gru", 2000.0),
            row("pqn", "gru", 1000.0),
        ],
    }
    table = learner_throughput.markdown(record)
    assert "| shm  | 1,000 | 1,500 | 1.50 | >= 1: met | - |" in table
    assert "| gru  | 2,000 | 1,000 | 0.50 | >= 1: missed | - |" in table
    # per-call times: the neighbouring calls' ratios, median and interquartile range
    record["results"][0]["time_s_all"] = [2.0, 2.0, 2.0, 2.0, 2.0]
    record["results"][1]["time_s_all"] = [1.0, 1.0, 2.0, 1.0, 4.0]
    assert "| 1.50 | >= 1: met | 2.000 (0.750-2.000) |" in learner_throughput.markdown(record)
    record["targets"]["min_pqn_over_ppo_steps_per_s"] = 2.0
    assert "| shm  | 1,000 | 1,500 | 1.50 | >= 2: missed |" in learner_throughput.markdown(record)


def test_conv_in_scan_table_states_the_ratio_inside_the_scan():
    from benchmarks import conv_in_scan

    record = {
        **FAKE_HEADER,
        "settings": {"frames": 128, "repeats": 3},
        "results": {
            "MatmulConv": {"grad_s": 0.7, "grad_in_scan_s": 0.4, "forward_s": 0.2},
            "nn.Conv (XLA)": {"grad_s": 0.9, "grad_in_scan_s": 18.0, "forward_s": 0.2},
        },
    }
    table = conv_in_scan.markdown(record)
    assert "| nn.Conv (XLA) | 0.900 s | 18.000 s | 0.200 s |" in table
    assert "45.0x faster" in table
