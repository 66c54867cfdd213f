"""The paper's experiments: every cell is a valid run at both scales, the runner trains, resumes and reads back,
and the report sets our numbers beside the paper's."""

import dataclasses
import json
import shutil

import pytest

from experiments import definitions, report, runner
from experiments.__main__ import main as experiments_cli
from shm_jax import api
from shm_jax.build import build
from shm_jax.presets import from_preset
from shm_jax.training import loop

# Two updates of 2 envs x 64 steps: Autoencode-Easy episodes (103 steps) end in the second update; no final
# evaluation (MMER cells do not read it, and it would compile two more programs per cell).
TINY = dict(
    num_envs=2,
    num_steps=64,
    num_minibatches=1,
    update_epochs=1,
    total_timesteps=256,
    eval_episodes=0,
    memory_kwargs={"memory_size": 4, "projection_size": 8, "shortcut": True},
)


@pytest.mark.parametrize("name", sorted(definitions.EXPERIMENTS))
@pytest.mark.parametrize("scale", definitions.SCALES)
def test_every_cell_builds_at_both_scales(name, scale):
    experiment = definitions.EXPERIMENTS[name]
    for task in experiment.task_ids(scale):
        assert experiment.paper_task(task) in experiment.tasks
        for agent in experiment.agents:
            config = experiment.config(task, agent, scale)
            built = build(config)  # validates and makes env, network and PPO (nothing compiles)
            assert built.config.env.env_id == task and built.config.agent.memory == agent.memory
            assert config.run.num_seeds == definitions.SEEDS
            assert config.algo == from_preset(experiment.preset).algo  # the preset's learner at both scales
            if scale == "cpu":  # the stated cpu budget, whichever learner
                for option, value in experiment.scale_overrides["cpu"].items():
                    assert getattr(config.algorithm, option) == value, option


def test_paper_scale_is_the_paper_budget_and_cpu_scale_is_smaller():
    popgym = definitions.POPGYM_TABLE
    paper = popgym.config("AutoencodeEasy", definitions.SHM, "paper")
    cpu = popgym.config("AutoencodeEasy", definitions.SHM, "cpu")
    assert paper.ppo.total_timesteps == 15_000_000 and paper.ppo.num_steps == 1024
    assert cpu.ppo.total_timesteps < paper.ppo.total_timesteps
    # The agent is the paper's at both scales: only the training budget and PPO numbers change.
    assert paper.agent == cpu.agent and paper.agent.memory_kwargs["projection_size"] == 1024
    assert len(popgym.tasks) == 12 and len(popgym.cpu_tasks) >= 4


@pytest.mark.parametrize(
    ("metric", "expected"), [("mmer", [50.0, -25.0]), ("final_return", [3.5, 1.5]), ("success", [80.0, 40.0])]
)
def test_a_cell_reports_its_metric_in_table_units(tmp_path, metric, expected):
    per_run = [
        {"final_return": 3.5, "mmer": 0.5, "final_success_rate": 0.8},
        {"final_return": 1.5, "mmer": -0.25, "final_success_rate": 0.4},
    ]
    summary = {"per_run": per_run, "status": "finished", "env_steps_per_run": 64}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    experiment = dataclasses.replace(definitions.CRAFTAX_1M, metric=metric)
    value = runner.cell_value(experiment, tmp_path)
    assert value["per_seed"] == pytest.approx(expected) and value["mean"] == pytest.approx(sum(expected) / 2)


def test_bad_names_fail_in_one_line_before_training(tmp_path, capsys):
    with pytest.raises(ValueError, match="task"):
        definitions.POPGYM_TABLE.config("CartPole", definitions.SHM, "cpu")
    with pytest.raises(ValueError, match="scale"):
        definitions.POPGYM_TABLE.config("AutoencodeEasy", definitions.SHM, "laptop")
    assert experiments_cli(["run", "popgym", "--scale", "cpu", "--agents", "LSTM", "--out", str(tmp_path)]) == 2
    assert "agents" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/*--*"))  # nothing trained
    # An experiment without cells at a scale (POPGym Arcade has no cpu scale) says so in one line.
    for command in ("run", "status"):
        assert experiments_cli([command, "arcade", "--scale", "cpu", "--out", str(tmp_path)]) == 2
        assert "no cells at scale cpu" in capsys.readouterr().err


def test_cell_names_are_portable_directory_names():
    assert runner.cell_name("arcade:CountRecallEasy-full", definitions.SHM) == "arcade-CountRecallEasy-full--shm"
    assert runner.cell_name("VisualMatch-Short", definitions.SHM_FIXED_THETA) == "VisualMatch-Short--shm-fixed"


@pytest.mark.slow
def test_runner_trains_resumes_reads_back_and_reports(tmp_path, monkeypatch):
    ablation = definitions.CALIBRATION_ABLATION
    agents = ("random θ (SHM)", "C = 1")
    root = tmp_path / "calibration-cpu"
    # One cell interrupted after its first update: the runner must continue it, not start it again.
    first = ablation.agents[0]
    config = ablation.config(
        "AutoencodeEasy", first, "cpu", out_dir=str(root), run_name=runner.cell_name("AutoencodeEasy", first), **TINY
    )
    api.train(config, stop_after_updates=1, progress=False)
    calls, recorded_before = [], []
    real_run = api.train

    def counting_run(cfg, **kw):
        calls.append(kw.get("resume_dir"))
        recorded_before.append(len(runner.recorded_cells(root)))
        return real_run(cfg, **kw)

    monkeypatch.setattr(api, "train", counting_run)
    path = runner.run_experiment(ablation, "cpu", tmp_path, agents=agents, progress=False, **TINY)
    assert calls == [root / config.run.run_name, None]  # the interrupted cell resumed, the other one trained
    assert recorded_before == [0, 1]  # results.json is written after every cell, not only at the end
    record = json.loads(path.read_text())
    assert [c["agent"] for c in record["cells"]] == list(agents)
    for cell in record["cells"]:
        summary = json.loads((root / cell["run_dir"] / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["updates"] == 2
        assert len(cell["per_seed"]) == definitions.SEEDS
        assert cell["mean"] == pytest.approx(sum(cell["per_seed"]) / 3)
        assert cell["mean"] == pytest.approx(100 * summary["per_setting"][0]["mmer"]["mean"])

    # Finished cells are read back, never trained again.
    monkeypatch.setattr(api, "train", lambda *a, **k: pytest.fail("a finished cell was trained again"))
    again = json.loads(
        runner.run_experiment(ablation, "cpu", tmp_path, agents=agents, progress=False, **TINY).read_text()
    )
    assert [c["mean"] for c in again["cells"]] == [c["mean"] for c in record["cells"]]

    for cell in again["cells"]:  # the learning curves travel in results.json, binned, one list per seed
        curve = cell["curve"]
        assert len(curve["per_seed"]) == definitions.SEEDS and len(curve["env_steps"]) == 2
        assert all(len(seed) == 2 for seed in curve["per_seed"])

    # A fresh clone has results.json but no run directories (they are not committed): nothing is trained again,
    # status reads the recorded cells, and the figure is drawn from the recorded curves.
    for cell in again["cells"]:
        shutil.rmtree(root / cell["run_dir"])
    runner.run_experiment(ablation, "cpu", tmp_path, agents=agents, progress=False, **TINY)
    status = {c["cell"]: c["status"] for c in runner.experiment_status(ablation, "cpu", tmp_path, **TINY)}
    assert [status[c["run_dir"]] for c in again["cells"]] == ["finished", "finished"]

    written = report.write_report(path)
    table = written[0].read_text()
    assert "| AutoencodeEasy |" in table and "random θ (SHM)" in table and "C = 1" in table
    assert all(p.is_file() and p.stat().st_size > 0 for p in written[1:])
    assert report._cell_curves(root, again["cells"][0])[1].shape == (definitions.SEEDS, 2)


def test_report_sets_the_papers_numbers_beside_ours_and_averages_only_a_full_table():
    popgym = definitions.POPGYM_TABLE
    cells = [
        {"task": t, "agent": a.label, "mean": 10.0 * i, "std": 1.0, "run_dir": "x"}
        for i, t in enumerate(popgym.tasks)
        for a in popgym.agents
    ]
    record = {
        "experiment": "popgym",
        "title": popgym.title,
        "scale": "paper",
        "overrides": {},
        "notes": "",
        "machine": {"backend": "gpu", "cpu_count": 8, "load_average_end": [0, 0, 0]},
        "cells": cells,
    }
    table = report.markdown(record)
    autoencode_row = next(line for line in table.splitlines() if line.startswith("| AutoencodeEasy |"))
    assert "(paper 49.5 ± 23.3)" in autoencode_row and "(paper -32.7 ± 0.6)" in autoencode_row
    average_row = next(line for line in table.splitlines() if "average over 12" in line)
    assert "55.0 (paper -5.1 ± 6.3)" in average_row  # mean of 0, 10, ..., 110
    partial = report.markdown({**record, "cells": cells[:8]})
    assert "average over 12" not in partial


def test_a_cell_whose_every_seed_diverges_is_recorded_and_the_next_cell_still_runs(tmp_path, monkeypatch):
    ablation = definitions.CALIBRATION_ABLATION
    root = tmp_path / "calibration-cpu"
    trained = []

    def fake_run(config, **kwargs):  # the first cell diverges the way api.train ends such a run
        run_dir = root / config.run.run_name
        run_dir.mkdir(parents=True)
        trained.append(run_dir.name)
        status = "nonfinite" if len(trained) == 1 else "finished"
        per_run = [{"mmer": None if status == "nonfinite" else 0.1 * s} for s in range(3)]
        diverged = [{"run": f"seed{s}", "at_update": 1} for s in range(3)] if status == "nonfinite" else []
        (run_dir / "summary.json").write_text(
            json.dumps(
                {"status": status, "per_run": per_run, "diverged": diverged, "env_steps_per_run": 10, "timing": {}}
            )
        )
        if status == "nonfinite":
            raise loop.NonFiniteLossError("non-finite loss in every run")
        return run_dir

    monkeypatch.setattr(api, "train", fake_run)
    path = runner.run_experiment(ablation, "cpu", tmp_path, agents=("neural θ", "C = 1"), progress=False)
    assert trained == ["AutoencodeEasy--neural", "AutoencodeEasy--c-1"]
    neural, ones = json.loads(path.read_text())["cells"]
    assert neural["status"] == "nonfinite" and neural["mean"] is None and neural["diverged_at_updates"] == [1, 1, 1]
    assert ones["status"] == "finished" and ones["mean"] == pytest.approx(10.0)
    # Read back on the next call, never trained again; the table says what happened.
    monkeypatch.setattr(api, "train", lambda *a, **k: pytest.fail("a diverged cell was trained again"))
    runner.run_experiment(ablation, "cpu", tmp_path, agents=("neural θ",), progress=False)
    row = next(
        line
        for line in report.markdown(json.loads(path.read_text())).splitlines()
        if line.startswith("| AutoencodeEasy |")
    )
    assert "diverged (update 1)" in row and "10.0 ± 8.2" in row


def test_an_interrupted_cell_stops_the_experiment(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM ends the running cell's train call with an interrupted run: the runner records it and
    starts no further cell (a session's end must not start, and lose, the next one)."""
    ablation = definitions.CALIBRATION_ABLATION
    root = tmp_path / "calibration-cpu"
    trained = []

    def interrupted_run(config, **kwargs):
        run_dir = root / config.run.run_name
        run_dir.mkdir(parents=True)
        trained.append(run_dir.name)
        summary = {"status": "interrupted", "per_run": [{"mmer": 0.1}] * 3, "env_steps_per_run": 10, "timing": {}}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return run_dir

    monkeypatch.setattr(api, "train", interrupted_run)
    path = runner.run_experiment(ablation, "cpu", tmp_path, agents=("neural θ", "C = 1"), progress=False)
    assert trained == ["AutoencodeEasy--neural"]
    assert [c["status"] for c in json.loads(path.read_text())["cells"]] == ["interrupted"]
    row = next(line for line in report.markdown(json.loads(path.read_text())).splitlines() if "AutoencodeEasy" in line)
    assert "(interrupted at 10 steps)" in row and "10.0" not in row  # a number so far is not the cell's result


def test_list_prints_every_experiment_with_its_budget_and_other_overrides(capsys):
    assert experiments_cli(["list"]) in (None, 0)
    out = capsys.readouterr().out
    assert all(f"{name}: " in out for name in definitions.EXPERIMENTS)
    assert "cpu: tasks Wind-50-150; steps per run: 510000; on top of the preset: {'updates_per_iter': 25}" in out
