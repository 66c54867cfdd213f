import json

import pytest

from benchmarks import sac_throughput


def _row(case, env_id, algo, critic, critic_size, update_s, collect_s, steps_per_s, hours, seeds, temp):
    return {
        "case": case,
        "status": "ok",
        "env_id": env_id,
        "algo": algo,
        "actor_memory": "gru",
        "actor_memory_size": 128,
        "critic_memory": critic,
        "critic_memory_size": critic_size,
        "batch_size": 32,
        "episode_length": 275,
        "update_s": update_s,
        "collect_s": collect_s,
        "steps_per_s": steps_per_s,
        "compile_s": 12.34,
        "memory_estimate_per_run_bytes": 300 * 2**20,
        "xla_memory": {"temp": temp} if temp is not None else {"error": "not implemented"},
        "projected_hours_per_seed": hours,
        "paper_num_seeds": seeds,
    }


def _record():
    return {
        "host": {"cpu_model": "cpu", "cpu_count": 2, "backend": "cpu", "device_kind": "cpu"},
        "timestamp_utc": "t",
        "git_commit": "c",
        "load_average_start": [1.0],
        "load_average_end": [2.0],
        "settings": {"quick": False, "cases": {"credit-shm": {"updates_per_call": 10}}, "repeats": 5},
        "not_included": "memorax's SAC: continuous only.",
        "results": [
            _row("credit-shm", "VisualMatch250", "sacd", "shm", 24, 1.116, 0.0102, 3.5718, 320.69, 3, 200 * 2**20),
            _row("credit-gru", "VisualMatch250", "sacd", "gru", 128, 2.5, 0.01, 1.59, 1234.5, 3, None),
            {"case": "meta-shm", "status": "error: MemoryError: out of memory"},
        ],
    }


def test_sac_throughput_table_has_one_row_per_case():
    table = sac_throughput.markdown(_record())
    assert "| task | actor / critic memory | batch x (T+1) | s/update | collection s/iteration | env steps/s " in table
    assert (
        "| VisualMatch250 (sacd) | GRU-128 / SHM-24 | 32 x 276 | 1.12 | 0.0102 | 3.6 | 12.3 | 300.0 | 200.0 "
        "| 320.7 (3) |" in table
    )
    # no XLA memory analysis on this backend: the cell says so instead of a number
    assert "| VisualMatch250 (sacd) | GRU-128 / GRU-128 | 32 x 276 | 2.5 | 0.01 | 1.6 | 12.3 | 300.0 | n/a " in table
    assert "| 1,234.5 (3) |" in table
    assert "| meta-shm | error: MemoryError: out of memory |" in table
    assert "git c, load average [1.0] -> [2.0]" in table and "credit-shm K = 10" in table
    assert "Not included: memorax's SAC: continuous only." in table
    assert "quick" not in table.splitlines()[0]
    record = _record()
    record["settings"]["quick"] = True
    assert "smoke test" in sac_throughput.markdown(record).splitlines()[0]


def test_sac_throughput_from_json_remakes_the_table(tmp_path):
    path = tmp_path / "sac_throughput_cpu.json"
    path.write_text(json.dumps(_record()))
    assert sac_throughput.main(["--from-json", str(path)]) == path
    assert path.with_suffix(".md").read_text() == sac_throughput.markdown(_record())


def test_memory_labels():
    assert sac_throughput.memory_label("shm", 24) == "SHM-24"
    assert sac_throughput.memory_label("gru", 64) == "GRU-64"
    assert sac_throughput.memory_label("mlp", None) == "MLP"


def _memorax_record(update_s=0.25, load=(0.3, 0.5, 0.9)):
    """A synthetic ``benchmarks/memorax_sac.py`` record (the test needs no memorax)."""
    return {
        "timestamp_utc": "m",
        "versions": {"python": "3.12.1", "memorax": "1.0.1", "jax": "0.10.2"},
        "compared_with": {"case": "meta-gru"},
        "shape": {"batch_size": 64, "sequence_length": 100, "burn_in_length": 0, "hidden_size": 64},
        "networks": "memorax: actor ...; shm-jax meta-gru: ...",
        "differences": ["sequences: windows of stored transitions", "alpha: on the current step"],
        "result": {
            "status": "ok",
            "update_s": update_s,
            "sample_s": 0.002,
            "compile_s": 9.87,
            "updates_per_call": 20,
            "actor_params": 70_000,
            "critic_params": 90_000,
            "load_average_before": list(load),
            "load_average_after": [0.4, 0.5, 0.9],
        },
    }


def _record_with_meta():
    record = _record()
    meta = _row("meta-gru", "Wind-50-150", "sac", "gru", 64, 0.1, 0.0034, 20.4, 6.8, 5, 100 * 2**20)
    meta.update(batch_size=64, episode_length=100, actor_memory_size=64, updates_per_call=20)
    meta["load_average_before"] = [3.13, 3.08, 2.67]
    record["results"].append(meta)
    return record


def test_memorax_side_by_side_row_and_ratio():
    record = sac_throughput.merge_memorax(_record_with_meta(), _memorax_record(), "memorax_sac_cpu.json")
    section = record["memorax"]
    assert section["ratio_memorax_over_shm_jax"] == 2.5 and section["different_loads"]
    assert record["not_included"] == sac_throughput.NOT_INCLUDED_WITH_MEMORAX
    table = sac_throughput.markdown(record)
    # the case rows are untouched; the side-by-side section follows the table
    assert "| Wind-50-150 (sac) | GRU-64 / GRU-64 | 64 x 101 | 0.1 | 0.0034 | 20.4 |" in table
    assert "## Side by side: memorax 1.0.1's recurrent SAC at the meta-gru shape" in table
    assert "| shm-jax (meta-gru row above) | Wind-50-150 (sac) | GRU-64 / GRU-64 | 64 x 101 observations" in table
    assert "| 0.1 | 1 | 12.3 | [3.13, 3.08, 2.67] |" in table
    assert (
        "| GRU-64 / GRU-64 | 64 x 100 transitions (obs and next_obs; burn-in 0) | 0.25 | 2.50 | 9.9 "
        "| [0.3, 0.5, 0.9] |" in table
    )
    assert "Measured at different loads" in table
    assert "- sequences: windows of stored transitions" in table and "- alpha: on the current step" in table
    assert "memorax actor 70,000, critic 90,000" in table
    assert f"Not included: {sac_throughput.NOT_INCLUDED_WITH_MEMORAX}" in table
    # the same load: no load note
    same = sac_throughput.merge_memorax(_record_with_meta(), _memorax_record(load=(3.0, 3.0, 2.7)))
    assert not same["memorax"]["different_loads"] and "different loads" not in sac_throughput.markdown(same)


def test_memorax_failed_run_and_missing_case():
    failed = _memorax_record()
    failed["result"] = {"status": "error: ValueError: boom"}
    record = sac_throughput.merge_memorax(_record_with_meta(), failed)
    assert record["memorax"]["ratio_memorax_over_shm_jax"] is None
    assert "| memorax 1.0.1 | error: ValueError: boom |" in sac_throughput.markdown(record)
    with pytest.raises(ValueError, match="meta-gru"):
        sac_throughput.merge_memorax(_record(), _memorax_record())  # no meta-gru row
    quick = _memorax_record()
    quick["quick"] = True
    with pytest.raises(ValueError, match="--quick"):
        sac_throughput.merge_memorax(_record_with_meta(), quick)


def test_from_json_with_memorax_json_rewrites_record_and_table(tmp_path):
    path = tmp_path / "sac_throughput_cpu.json"
    path.write_text(json.dumps(_record_with_meta()))
    memorax_path = tmp_path / "memorax_sac_cpu.json"
    memorax_path.write_text(json.dumps(_memorax_record()))
    assert sac_throughput.main(["--from-json", str(path), "--memorax-json", str(memorax_path)]) == path
    record = json.loads(path.read_text())
    assert record["memorax"]["ratio_memorax_over_shm_jax"] == 2.5
    assert record["memorax"]["source"] == "memorax_sac_cpu.json"
    assert path.with_suffix(".md").read_text() == sac_throughput.markdown(record)
    # merging again replaces the section rather than stacking a second one
    sac_throughput.main(["--from-json", str(path), "--memorax-json", str(memorax_path)])
    assert json.loads(path.read_text()) == record
