"""The command line (shm-jax, python -m shm_jax, python train.py) end to end with the real trainer (tiny sizes): run
directory, the evaluate command, the three entry points' options and version, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import shm_jax
from shm_jax import api, cli, cli_parse
from shm_jax.build import build
from shm_jax.config import with_overrides
from shm_jax.memory.shm import sequential_chunk_size
from shm_jax.presets import from_preset
from shm_jax.training import resources, rundir
from shm_jax.training.batched import BatchedProgram
from shm_jax.training.checkpoint import Checkpointer

REPO = Path(__file__).parents[2]
TINY = [
    "--num-envs",
    "4",
    "--num-steps",
    "8",
    "--num-minibatches",
    "2",
    "--update-epochs",
    "1",
    "--feature-size",
    "8",
    "--pre-size",
    "8",
    "--post-size",
    "8",
    "--head-hidden-size",
    "8",
    "--updates-per-chunk",
    "2",
]


@pytest.mark.slow
def test_cli_smoke_run_writes_everything_and_eval_subcommand_works(tmp_path):
    args = [
        "--env",
        "RepeatPreviousEasy",
        "--memory",
        "gru",
        "--memory-kwargs",
        "hidden_size",
        "8",
        "--num-seeds",
        "2",
        "--sweep",
        "lr=1e-3,3e-4",
        "--total-timesteps",
        str(4 * 32),
        *TINY,
        "--eval-episodes",
        "2",
        "--out-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(  # the installed console script, from outside the checkout
        [_console_script(), "train", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("RepeatPreviousEasy-gru-")
    assert f"Run directory: {run_dir}" in result.stdout and "MMER" in result.stdout
    png = run_dir / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"]["memory_kwargs"] == {"hidden_size": 8}
    assert config["run"]["sweep"] == [["lr", [0.001, 0.0003]]]
    assert {d["platform"] for d in json.loads((run_dir / "devices.json").read_text())["devices"]} == {"cpu"}
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 4  # 4 updates x (2 settings x 2 seeds)
    assert {r["run"] for r in records} == {"lr=0.001_seed0", "lr=0.001_seed1", "lr=0.0003_seed0", "lr=0.0003_seed1"}
    assert len(list((run_dir / "csv").glob("*.csv"))) == 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps_per_run"] == 4 * 32
    assert [s["label"] for s in summary["per_setting"]] == ["lr=0.001", "lr=0.0003"]
    assert "final_success_rate" not in summary["per_setting"][0]  # RepeatPrevious defines no success
    assert [e["policy"] for e in summary["evaluation"]] == ["greedy", "sampled"]
    timing = summary["timing"]  # training, compiling and the final evaluation are timed apart
    assert timing["train_seconds"] > 0 and timing["eval_seconds"] > 0 and timing["compile_seconds"] > 0
    assert Checkpointer(run_dir, create=False).latest_step() == 4

    # the evaluate command reads the run back (in-process: the same code path as `shm-jax evaluate`)
    assert cli.main(["evaluate", str(run_dir), "--episodes", "3", "--policy", "greedy"]) == 0
    (greedy,) = json.loads((run_dir / "eval.json").read_text())
    assert greedy["policy"] == "greedy" and greedy["episodes"] == 3 and len(greedy["per_run"]) == 4
    # RepeatPrevious-Easy returns lie in [-1, 1]; every evaluation episode finished
    assert all(-1.0 <= r["mean_return"] <= 1.0 and r["unfinished"] == 0 for r in greedy["per_run"])


def _console_script() -> str:
    """The ``shm-jax`` script installed next to this interpreter (pip install [-e] . puts it there)."""
    script = Path(sys.executable).with_name("shm-jax")
    assert script.is_file(), f"{script} is missing: pip install -e . (re)creates it"
    return str(script)


def _option_names(help_text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z0-9-]*", help_text))


@pytest.mark.slow  # three fresh processes
def test_the_three_entry_points_list_the_same_options(capsys):
    """`shm-jax --help`, `python -m shm_jax --help` and `python train.py --help` are one parser (train.py and the module
    are thin calls into shm_jax.cli); `shm-jax train --help` is the bare form's."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    commands = {
        "shm-jax": [_console_script(), "--help"],
        "python -m shm_jax": [sys.executable, "-m", "shm_jax", "--help"],
        "python train.py": [sys.executable, str(REPO / "train.py"), "--help"],
    }
    options = {}
    for name, command in commands.items():
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (name, result.stderr[-2000:])
        assert result.stdout.startswith(f"usage: {name} "), (name, result.stdout[:200])
        options[name] = _option_names(result.stdout)
    with pytest.raises(SystemExit) as done:  # the bare form is the train command (in-process: the same parser)
        cli.main(["train", "--help"])
    assert done.value.code == 0
    options["shm-jax train"] = _option_names(capsys.readouterr().out)
    expected = {"--env-id", "--memory", "--algo", "--preset", "--resume", "--sweep", "--lr", "--out-dir", "--version"}
    assert expected <= options["shm-jax"]
    assert all(found == options["shm-jax"] for found in options.values()), options


def test_version_is_the_package_version_and_starts_no_jax(capsys):
    import importlib.metadata

    assert shm_jax.__version__ == importlib.metadata.version("shm-jax")
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out == f"shm-jax {shm_jax.__version__}\n"
    code = "import sys; from shm_jax import cli; cli.main(['--version']); print('jax' in sys.modules)"
    for command in ([_console_script(), "--version"], [sys.executable, "-c", code]):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith(f"shm-jax {shm_jax.__version__}\n"), result
    assert result.stdout.splitlines()[1] == "False"


def test_a_leading_word_names_the_command():
    assert cli.split_command(["--env", "X"]) == ("train", ["--env", "X"])
    assert cli.split_command(["train", "--lr", "1"]) == ("train", ["--lr", "1"])
    assert cli.split_command(["evaluate", "runs/a"]) == ("evaluate", ["runs/a"])
    assert cli.split_command(["eval", "runs/a"]) == ("evaluate", ["runs/a"])


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory with a config.json (no checkpoint needed: these errors come first)."""
    run_dir = tmp_path_factory.mktemp("saved") / "run"
    run_dir.mkdir()
    rundir.write_config(run_dir, from_preset("default"))
    return run_dir


# Every bad input a user can type, the option its one-line error must name, checked before anything compiles.
BAD_INPUTS = [
    (["--env", "NoSuchEnv"], "env_id: unknown environment id 'NoSuchEnv'"),
    (["--env", "RepeatPreviousEasyy"], "env_id: unknown environment id"),
    (["--env", "probe:Nope"], "env_id: unknown probe 'Nope'"),
    (["--env", "gymnax:Nope-v0"], "env_id: unknown gymnax environment"),
    (["--env-overrides", "no_such_option", "1"], "env_overrides: invalid for 'RepeatFirstEasy'"),
    (["--memory", "lstm"], "memory: unknown memory 'lstm'"),
    (["--memory", "gru", "--memory-kwargs", "hidden", "3"], "memory_kwargs: invalid for memory 'gru'"),
    (["--memory", "gru", "--memory-kwargs", "hidden_size", "0"], "memory_kwargs: invalid for memory 'gru'"),
    (["--memory-kwargs", "memory_size", "-4"], "memory_kwargs: invalid for memory 'shm'"),
    (["--memory-kwargs", "dtype", "bfloat16"], "memory_kwargs: 'dtype' is set by the precision option"),
    # 16384: a 1 GiB memory per env (4096 now fits a 24 GiB host: its backward checkpoints every 8 steps).
    (["--memory-kwargs", "memory_size", "16384"], "memory_kwargs: the run needs at least"),
    (["--memory-kwargs", "memory_size", "100000"], "memory_kwargs: the run needs at least"),
    (["--num-envs", "1000000", "--total-timesteps", "128000000"], "num_envs: the run needs at least"),
    (["--num-seeds", "40000"], "num_seeds: the run needs at least"),
    (["--num-envs", "0"], "num_envs: must be a positive integer"),
    (["--num-envs", "6", "--num-minibatches", "4"], "num_minibatches: must divide num_envs=6"),
    (["--num-steps", "-3"], "num_steps: must be a positive integer"),
    (["--total-timesteps", "10"], "total_timesteps: must be at least num_envs*num_steps"),
    (["--update-epochs", "0"], "update_epochs: must be a positive integer"),
    (["--lr", "0"], "lr: must be a positive finite number"),
    (["--lr", "-1e-3"], "lr: must be a positive finite number"),
    (["--lr", "inf"], "lr: must be a positive finite number"),
    (["--lr", "nan"], "lr: must be a positive finite number"),
    (["--gamma", "1.5"], "gamma: must be a number in [0, 1]"),
    (["--gae-lambda", "-0.1"], "gae_lambda: must be a number in [0, 1]"),
    (["--clip-eps", "0"], "clip_eps: must be a positive finite number"),
    (["--ent-coef", "-0.01"], "ent_coef: must be a non-negative finite number"),
    (["--vf-coef", "-1"], "vf_coef: must be a non-negative finite number"),
    (["--max-grad-norm", "0"], "max_grad_norm: must be a positive finite number"),
    (["--adam-eps", "0"], "adam_eps: must be a positive finite number"),
    (["--num-seeds", "0"], "num_seeds: must be a positive integer"),
    (["--seed", "-1"], "seed: must be a non-negative integer"),
    (["--sweep", "learning_rate=1e-4,3e-4"], "sweep: unknown sweep name 'learning_rate'"),
    (["--sweep", "lr=fast"], "sweep: values of 'lr' must be numbers"),
    (["--sweep", "lr=-1e-3,1e-3"], "sweep: lr=-0.001: must be a positive finite number"),
    (["--sweep", "gamma=0.9,2"], "sweep: gamma=2.0: must be a number in [0, 1]"),
    (["--sweep", "lr=1e-3", "lr=2e-3"], "sweep: 'lr' appears twice"),
    (["--sweep", "lr"], "sweep: expected NAME=V1,V2"),
    (
        ["--preset", "paper-popgm"],
        "preset: unknown preset 'paper-popgm'; valid: arcade, craftax-1m, default, paper-credit, paper-meta, "
        "paper-popgym, paper-popgym-official, ppo-credit, ppo-meta, pqn-credit",
    ),
    (["--updates-per-chunk", "0"], "updates_per_chunk: must be a positive integer"),
    (["--checkpoint-every", "-1"], "checkpoint_every: must be a non-negative integer"),
    (["--checkpoint-minutes", "-5"], "checkpoint_minutes: must be a non-negative finite number"),
    (["--keep-checkpoints", "0"], "keep_checkpoints: must be a positive integer"),
    (["--eval-episodes", "-1"], "eval_episodes: must be a non-negative integer"),
    (["--feature-size", "0"], "feature_size: must be a positive integer"),
    (["--pre-size", "-1"], "pre_size: must be a positive integer"),
    (["--time-encoding-max-len", "0"], "time_encoding_max_len: must be a positive integer"),
    (["--run-name", "a/b"], "run_name: must be None or a folder name without '/'"),
    (["--precision", "float16"], "--precision"),
    (["--num-envs", "abc"], "--num-envs"),
    (["--no-such-flag", "1"], "Unrecognized options: --no-such-flag"),
    (["--resume", "/nonexistent/run"], "resume: run directory '/nonexistent/run' does not exist"),
    (["--resume", "{saved}", "--num-envs", "8"], "num_envs: cannot change on --resume"),
    (["--resume", "{saved}", "--preset", "paper-popgym"], "preset: cannot be combined with --resume"),
    (["evaluate", "/nonexistent/run"], "eval: run directory '/nonexistent/run' does not exist"),
    (["eval", "{saved}", "--episodes", "0"], "episodes: must be a positive integer"),
    (["eval", "{saved}"], "eval: no checkpoint in"),
]


def test_the_bad_input_list_is_long():
    assert len(BAD_INPUTS) >= 40


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a)[:40] for a, _ in BAD_INPUTS])
def test_bad_input_is_a_one_line_error_before_compiling(tmp_path, capsys, monkeypatch, saved_run, args, message):
    def compiling(*_, **__):
        raise AssertionError("the program was being compiled")

    monkeypatch.setattr(BatchedProgram, "compiled_chunk", compiling)
    # a 16 GiB host, whatever this machine has free: the memory estimate gives the same verdict everywhere
    monkeypatch.setattr(resources, "_host_available", lambda: 16 * 2**30)
    args = [a.replace("{saved}", str(saved_run)) for a in args]
    assert cli.main([*args, "--out-dir", str(tmp_path)] if args[0] not in cli.COMMANDS else args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not list(tmp_path.iterdir())  # no run directory: it failed before building anything


def test_the_memory_estimate_accepts_the_presets(monkeypatch):
    """No false alarm: the default run and the paper's POPGym run fit a 16 GiB host."""
    monkeypatch.setattr(resources, "_host_available", lambda: 16 * 2**30)
    for config in (from_preset("default"), from_preset("paper-popgym", env_id="RepeatPreviousEasy")):
        built = build(config)
        estimate = built.algorithm.memory_estimate(built.hyperparameters, config.run.num_seeds)
        resources.check_fits(estimate)
        assert 0 < estimate.total < 16 * 2**30
    # the estimate grows with the memory: SHM's [H, H] carry and the chunk of [H, H] states its backward recomputes
    small = build(from_preset("default", memory_kwargs={"memory_size": 32}))
    large = build(from_preset("default", memory_kwargs={"memory_size": 256}))
    e_small = small.algorithm.memory_estimate(small.hyperparameters, 1)
    e_large = large.algorithm.memory_estimate(large.hyperparameters, 1)
    batch, length = small.algorithm.num_envs // small.algorithm.num_minibatches, small.algorithm.num_steps

    def stacked(hsz):  # the backward's largest [n, B, H, H] float32: the recomputed chunk or the chunk boundaries
        chunk = sequential_chunk_size(batch, hsz)
        return max(chunk, -(-length // chunk)) * batch * hsz * hsz * 4

    assert (e_small.largest_array, e_large.largest_array) == (stacked(32), stacked(256))
    assert e_large.state > 10 * e_small.state


# What jaxlib's CUDA plugin (the aot extra) logs from C++ whenever jax is imported on a machine without CUDA: not ours.
PLUGIN_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] .*)$"
)


def test_exit_code_and_message_of_a_bad_option_in_a_fresh_process():
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--env", "RepeatPreviousEasyy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    ours = [line for line in result.stderr.strip().splitlines() if not PLUGIN_LOG.match(line)]
    assert len(ours) == 1 and "closest valid ids: RepeatPreviousEasy" in ours[0], result.stderr[-2000:]


@pytest.mark.slow
def test_real_trainer_resume_is_exact(tmp_path):
    """4 updates straight == 2 + save + restore + 2 (full runner state: params, Adam, env, SHM carry, RNG)."""
    config = from_preset(
        "default",
        env_id="RepeatFirstEasy",
        memory="shm",
        memory_kwargs={"memory_size": 4, "projection_size": 8},
        num_envs=4,
        num_steps=8,
        num_minibatches=2,
        update_epochs=1,
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        total_timesteps=4 * 32,
        updates_per_chunk=2,
        num_seeds=2,
        eval_episodes=0,
        out_dir=str(tmp_path / "straight"),
    )
    built = build(config)
    program = built.program()
    straight = api.train(config, built=built, program=program, progress=False)
    halves_config = with_overrides(config, out_dir=str(tmp_path / "halves"))
    halves = api.train(halves_config, built=built, program=program, progress=False, stop_after_updates=2)
    assert Checkpointer(halves, create=False).all_steps() == [2]
    api.train(halves_config, built=built, program=program, progress=False, resume_dir=halves)

    def final(run_dir):
        checkpointer = Checkpointer(run_dir, create=False)
        try:
            return checkpointer.restore(program.abstract_state())
        finally:
            checkpointer.close()

    (state_a, hist_a, _), (state_b, hist_b, _) = final(straight), final(halves)
    leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
    assert len(leaves_a) == len(leaves_b) > 10
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for key in hist_a:
        np.testing.assert_array_equal(hist_a[key], hist_b[key])
    assert int(np.asarray(state_b.update).max()) == 4


class _Stderr:
    """Lines a child process writes to stderr, with the time each arrived (read on a thread)."""

    def __init__(self, proc):
        import threading

        self.lines: list[tuple[float, str]] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in proc.stderr:
            self.lines.append((time.monotonic(), line))

    def wait_for(self, text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if text in line:
                    return at
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} in stderr: {''.join(line for _, line in self.lines)[-3000:]}")

    def text(self) -> str:
        """What arrived so far; once the process has exited, everything it wrote (the reader may lag behind)."""
        if self._proc.poll() is not None:
            self._thread.join(timeout=30)
        return "".join(line for _, line in self.lines)


def _updates_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len({json.loads(line)["update"] for line in path.read_text().splitlines()}) if path.is_file() else 0


@pytest.mark.slow
def test_signals_are_acknowledged_at_once_stop_after_the_running_update_and_set_the_exit_code(tmp_path):
    """The real CLI with updates of a few seconds: SIGTERM -> acknowledged while the update still runs, stops after
    it, saves, exit 143; --resume with a new lr -> recorded; then Ctrl-C twice -> exit 130 at once, the newest
    checkpoint intact."""
    args = [
        "--env",
        "RepeatPreviousEasy",
        "--memory",
        "gru",
        "--memory-kwargs",
        "hidden_size",
        "64",
        "--num-envs",
        "32",
        "--num-steps",
        "256",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "12",
        "--total-timesteps",
        str(32 * 256 * 1000),
        "--run-name",
        "run",
        "--out-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    run_dir = tmp_path / "run"

    def start(argv):
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return proc, _Stderr(proc)

    proc, err = start(args)
    deadline = time.monotonic() + 900
    while _updates_logged(run_dir) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, err.text()[-3000:]
    logged = _updates_logged(run_dir)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    acked = err.wait_for("SIGTERM received: stopping after update", timeout=60)
    assert _updates_logged(run_dir) == logged, "the acknowledgement came only after the running update ended"
    assert proc.wait(timeout=600) == 143, err.text()[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_signal"] == "SIGTERM"
    assert summary["updates"] == logged + 1  # the update that was running when the signal came, no more
    assert Checkpointer(run_dir, create=False).latest_step() == logged + 1
    print(f"SIGTERM acknowledged after {acked - sent:.2f} s")

    proc, err = start(["--resume", str(run_dir), "--lr", "5e-4"])
    err.wait_for("resume: lr 0.001 -> 0.0005 (recorded in config.json)", timeout=120)
    while _updates_logged(run_dir) < logged + 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, err.text()[-3000:]
    proc.send_signal(signal.SIGINT)
    err.wait_for("SIGINT received: stopping after update", timeout=60)
    running = _updates_logged(run_dir)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "aborted at once" in err.text() and _updates_logged(run_dir) == running  # did not wait for the update
    config = json.loads((run_dir / "config.json").read_text())
    assert config["ppo"]["lr"] == 5e-4 and config["resumed"][0]["changed"] == {"lr": [1e-3, 5e-4]}
    loaded = api.load_run(run_dir, purpose="resume")  # the newest checkpoint reads back
    assert int(np.asarray(loaded.state.update).max()) >= logged + 1


@pytest.mark.parametrize("preset", ["paper-credit", "paper-meta"])
def test_sac_presets_parse_with_their_dict_options_kept_or_replaced(preset):
    """The SAC presets hold two dict options with a shared key (memory_kwargs of a GRU critic and the GRU actor's
    actor_memory_kwargs): both parse, keep the preset's values, and take a KEY VALUE list that replaces them."""
    kept = cli_parse.parse_train_args(["--preset", preset, "--memory", "gru"]).config
    assert kept == from_preset(preset, memory="gru")
    assert kept.algorithm.actor_memory_kwargs == kept.agent.memory_kwargs and kept.agent.memory_kwargs
    replaced = cli_parse.parse_train_args(["--preset", preset, "--actor-memory-kwargs", "hidden_size", "16"]).config
    assert replaced.algorithm.actor_memory_kwargs == {"hidden_size": 16}
    assert replaced.agent.memory_kwargs == from_preset(preset).agent.memory_kwargs
