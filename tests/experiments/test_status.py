"""python -m experiments status: which cells are finished, interrupted, started or not started (no training)."""

from __future__ import annotations

import json

from experiments.__main__ import main
from experiments.definitions import get
from experiments.runner import cell_name, experiment_status
from shm_jax.training import rundir


def test_status_reads_each_cell_from_its_run_directory(tmp_path, capsys):
    experiment = get("shm-study")
    root = tmp_path / "shm-study-cpu"
    task = experiment.task_ids("cpu")[0]
    gru, shm, shortcut = experiment.agents[:3]
    for agent, summary in ((gru, {"status": "finished", "env_steps_per_run": 1_000_000}), (shm, None), (shortcut, {})):
        run_dir = root / cell_name(task, agent)
        run_dir.mkdir(parents=True)
        (run_dir / rundir.CONFIG_FILE).write_text("{}")
        if summary == {}:
            summary = {"status": "interrupted", "env_steps_per_run": 4096}
        if summary is not None:
            (run_dir / "summary.json").write_text(json.dumps(summary))
        else:  # running: its logged rows say how far it got (the last line may be cut mid-write)
            rows = [{"update": u, "env_steps": 2048 * u, "seed": s} for u in (1, 2) for s in (0, 1)]
            text = "".join(json.dumps(r) + "\n" for r in rows)
            (run_dir / "metrics.jsonl").write_text(text + '{"update": 3, "env_st')

    cells = {c["cell"]: c for c in experiment_status(experiment, "cpu", tmp_path)}
    assert len(cells) == len(experiment.task_ids("cpu")) * len(experiment.agents)
    assert cells[cell_name(task, gru)]["status"] == "finished"
    assert cells[cell_name(task, gru)]["env_steps"] == cells[cell_name(task, gru)]["budget"] == 1_000_000
    assert (cells[cell_name(task, shm)]["status"], cells[cell_name(task, shm)]["env_steps"]) == ("started", 4096)
    assert (cells[cell_name(task, shortcut)]["status"], cells[cell_name(task, shortcut)]["env_steps"]) == (
        "interrupted",
        4096,
    )
    assert cells[cell_name(task, experiment.agents[3])]["status"] == "not started"

    assert main(["status", "shm-study", "--scale", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"1 of {len(cells)} cells done"
    assert any(line.startswith(cell_name(task, shortcut)) and "interrupted" in line for line in out)
