import json

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
