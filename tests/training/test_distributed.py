"""Several processes on one run (``python train.py --distributed``), with REAL processes: 2 JAX processes on 127.0.0.1
(a free port, gloo collectives on CPU, 2 CPU devices each) against 1 process with the same 4 devices.

Every launch waits with a deadline and then SIGKILLs the whole group: a process waiting in a barrier can swallow
SIGTERM (specs: multihost). Workers write their output to files, not pipes, so that one filling a pipe cannot block.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import train
from shm_jax.options import ConfigError
from shm_jax.training import distributed

HERE = Path(__file__).parent
REPO = HERE.parents[1]

# What `python train.py` does before its imports (join the job), then the fake learner (``--algo fake``, registered on
# import; it imports shm_jax.config, which starts JAX) and the CLI's main. STOP_AFTER_UPDATES: stop (and save) at
# the first chunk boundary (--updates-per-chunk 2) at or after that many updates.
TRAIN_WORKER = """
import functools, os, sys
from shm_jax.training import distributed
distributed.initialize(distributed.split_launch_args(sys.argv[1:])[0])
import fake_trainer  # noqa: F401
import train
from shm_jax import api
if os.environ.get("STOP_AFTER_UPDATES"):
    api.train = functools.partial(api.train, stop_after_updates=int(os.environ["STOP_AFTER_UPDATES"]))
sys.exit(train.main(sys.argv[1:]))
"""

SMOKE_WORKER = """
import json, sys
from shm_jax.training import distributed
from shm_jax.options import ConfigError
assert distributed.initialize(distributed.split_launch_args(sys.argv[1:])[0])
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from shm_jax.training import sharding
mesh = sharding.make_mesh()
pid = jax.process_index()
rows = np.arange(4.0).reshape(2, 2) + 4 * pid  # this process's rows of a [4, 2] array
x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), rows, (4, 2))
total = jax.jit(jnp.sum, out_shardings=sharding.replicated(mesh))(x)
def fails():
    raise ConfigError("run_name", "taken")
try:
    distributed.run_on_main(fails)
    error = None
except ConfigError as err:
    error = str(err)
print(json.dumps({
    "process": [pid, jax.process_count(), jax.local_device_count(), len(jax.devices())],
    "device_processes": [d.process_index for d in jax.devices()],
    "shard_processes": sorted({d.process_index for d in x.addressable_shards[0].data.devices()}),
    "sum": float(total),
    "gather": distributed.gather_ints([pid, 7]).tolist(),
    "any": distributed.agree_any(pid == 1), "all": distributed.agree_all(pid == 1),
    "main": distributed.main_decides(pid == 0),
    "broadcast": distributed.broadcast_str("from process %d" % pid),
    "on_main": distributed.run_on_main(lambda: "made once"),
    "error": error,
}))
distributed.barrier("smoke-end")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    command: list[str], tmp_path: Path, *, processes: int, devices: int, env: dict | None = None, ranks=None
) -> list[tuple[subprocess.Popen, Path, Path]]:
    """Start ``python -c SCRIPT ARGS`` or ``python PATH ARGS`` (``command``: [SCRIPT or PATH, *ARGS]) as ``processes``
    cooperating processes (``--coordinator-address`` on 127.0.0.1 when more than one) of ``devices`` CPU devices each,
    each in its own process group: (process, stdout file, stderr file) per process (only ``ranks`` if given)."""
    port = free_port()
    full_env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip(),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]),
        "PYTHONUNBUFFERED": "1",
        "SHM_JAX_INIT_TIMEOUT": "60",
        # generous: a loaded CI machine (two test workers on two cores) must not miss heartbeats; the kill test sets 5
        "SHM_JAX_HEARTBEAT_TIMEOUT": "60",
        "SHM_JAX_SHUTDOWN_TIMEOUT": "60",
        **(env or {}),
    }
    started = []
    for pid in range(processes) if ranks is None else ranks:
        join = [
            "--coordinator-address",
            f"127.0.0.1:{port}",
            "--num-processes",
            str(processes),
            "--process-id",
            str(pid),
        ]
        out, err = tmp_path / f"out{pid}-{port}.txt", tmp_path / f"err{pid}-{port}.txt"
        with open(out, "w") as out_file, open(err, "w") as err_file:
            proc = subprocess.Popen(
                [sys.executable, *(["-c"] if "\n" in command[0] else []), *command, *(join if processes > 1 else [])],
                cwd=tmp_path,
                env=full_env,
                stdout=out_file,
                stderr=err_file,
                start_new_session=True,
            )
        started.append((proc, out, err))
    return started


def kill_all(started) -> None:
    """SIGKILL every process group still running (SIGTERM can be swallowed by a process waiting in a barrier)."""
    for proc, _, _ in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def launch(command: list[str], tmp_path: Path, *, processes: int, devices: int, timeout: float = 150, env=None):
    """:func:`start`, then wait: (exit code, stdout, stderr) per process; all killed at the deadline (and the test fails
    with their output)."""
    started = start(command, tmp_path, processes=processes, devices=devices, env=env)
    deadline = time.monotonic() + timeout
    try:
        while any(proc.poll() is None for proc, _, _ in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        hung = any(proc.poll() is None for proc, _, _ in started)
    finally:
        kill_all(started)
    results = [(proc.returncode, out.read_text(), err.read_text()) for proc, out, err in started]
    if hung:
        raise AssertionError(f"killed after {timeout} s: {[(rc, e[-2000:]) for rc, _, e in results]}")
    return results


def _ok(results):
    for rc, _, err in results:
        assert rc == 0, err[-3000:]


# ----------------------------------------------------------------------------------------------------
# The launch options (in this process: no job is joined)


def test_launch_options_are_taken_out_of_the_command_line():
    argv = [
        "--lr",
        "-1e-3",
        "--distributed",
        "--num-processes=2",
        "--process-id",
        "1",
        "eval",
        "--local-device-ids",
        "0,1",
    ]
    launch_, rest = distributed.split_launch_args(argv)
    assert rest == ["--lr", "-1e-3", "eval"]
    assert launch_ == distributed.Launch(True, None, "2", "1", "0,1")
    assert distributed.split_launch_args(["--num-seeds", "2"]) == (distributed.Launch(), ["--num-seeds", "2"])
    assert distributed.split_launch_args(["--process-id", "0"])[0].enabled  # any launch option implies --distributed
    explicit = distributed.Launch(True, "127.0.0.1:1234", "2", "1", "0,1")
    assert distributed.resolve(explicit, environ={}) == distributed.Resolved("127.0.0.1:1234", 2, 1, (0, 1), None)
    from_env = distributed.Launch(True, None, "2", "0")
    assert distributed.resolve(from_env, environ={"JAX_COORDINATOR_ADDRESS": "h:9"}).coordinator_address == "h:9"


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--distributed"], "distributed"),
        (["--num-processes", "2", "--process-id", "0"], "coordinator_address"),
        (["--coordinator-address", "127.0.0.1:5", "--process-id", "0"], "num_processes"),
        (["--coordinator-address", "127.0.0.1:5", "--num-processes", "2"], "process_id"),
        (["--coordinator-address", "127.0.0.1", "--num-processes", "2", "--process-id", "0"], "coordinator_address"),
        (["--coordinator-address", "h:1", "--num-processes", "2", "--process-id", "2"], "process_id"),
        (["--coordinator-address", "h:1", "--num-processes", "0", "--process-id", "0"], "num_processes"),
        (["--coordinator-address", "h:1", "--num-processes", "2", "--process-id", "x"], "process_id"),
        (["--distributed", "--local-device-ids", "a,b"], "local_device_ids"),
        (["--num-processes"], "num_processes"),
    ],
)
def test_a_half_given_setup_is_one_line_naming_the_field(argv, field, monkeypatch):
    monkeypatch.setattr(distributed, "detected_cluster", lambda: None)  # as on a machine outside any cluster
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.delenv("JAX_LOCAL_DEVICE_IDS", raising=False)
    with pytest.raises(ConfigError) as err:
        distributed.resolve(distributed.split_launch_args(argv)[0])
    assert err.value.field == field and "\n" not in str(err.value)


def test_joining_after_jax_started_is_one_line(capsys):
    import jax

    jax.devices()  # this test process's backend is up: a job can no longer be joined
    assert distributed._backend_started()  # (else main would really try to join a job)
    assert train.main(["--coordinator-address", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: distributed: JAX was already started") and "\n" not in err, err


def test_an_unreachable_coordinator_is_one_line_within_the_init_timeout(tmp_path):
    """Process 1 of a job whose process 0 never starts: one error line and exit 2 after SHM_JAX_INIT_TIMEOUT, instead
    of jax's fatal abort with a C++ stack dump."""
    command = [str(REPO / "train.py"), "--num-seeds", "1"]
    started = start(command, tmp_path, processes=2, devices=1, env={"SHM_JAX_INIT_TIMEOUT": "2"}, ranks=[1])
    t0 = time.monotonic()
    try:
        code = started[0][0].wait(timeout=60)
    finally:
        kill_all(started)
    err = started[0][2].read_text()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: coordinator_address: no coordinator"), err
    assert "Check failure" not in err and time.monotonic() - t0 < 30


# ----------------------------------------------------------------------------------------------------
# Real processes


def test_two_processes_collectives(tmp_path):
    """jit over a global array, allgather, broadcast and the agreement helpers: the same answers in both processes."""
    t0 = time.monotonic()
    results = launch([SMOKE_WORKER], tmp_path, processes=2, devices=2, timeout=90)
    _ok(results)
    outs = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in results]
    for pid, out in enumerate(outs):
        assert out["process"] == [pid, 2, 2, 4]
        assert out["device_processes"] == [0, 0, 1, 1]  # process-blocked: process p holds block p of a mesh axis
        assert out["shard_processes"] == [pid]
        assert out["sum"] == 28.0
        assert out["gather"] == [[0, 7], [1, 7]]
        assert (out["any"], out["all"], out["main"]) == (True, False, True)
        assert out["broadcast"] == "from process 0" and out["on_main"] == "made once"
        assert out["error"] == "run_name: taken"  # process 0's ConfigError, raised in both
    print(f"collectives: {time.monotonic() - t0:.1f} s")


def test_train_py_joins_the_job_before_it_starts_jax(tmp_path):
    """The real ``python train.py --distributed``: both processes join (which fails once gymnax, imported through
    shm_jax.config, has started JAX), then reach the option check (here: an unknown environment, exit 2)."""
    command = [str(REPO / "train.py"), "--env", "RepeatPreviousEasyy"]
    results = launch(command, tmp_path, processes=2, devices=1, timeout=90)
    for rc, _, err in results:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert rc == 2 and len(lines) == 1 and "env" in lines[0] and "distributed" not in lines[0], err[-2000:]


FAKE_ARGS = [
    "--algo",
    "fake",
    "--env",
    "probe:MatchObservation",
    "--memory",
    "mlp",
    "--num-envs",
    "4",
    "--num-steps",
    "8",
    "--total-timesteps",
    str(4 * 8 * 6),
    "--num-seeds",
    "4",
    "--updates-per-chunk",
    "2",
    "--checkpoint-every",
    "1",
    "--eval-episodes",
    "2",
]


def _train(tmp_path, name, *, processes, devices, extra=(), env=None):
    out_dir = tmp_path / "runs"
    argv = [TRAIN_WORKER, *FAKE_ARGS, "--out-dir", str(out_dir), *(["--run-name", name] if name else []), *extra]
    return launch(argv, tmp_path, processes=processes, devices=devices, env=env)


def _summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("timing", "run_dir"):
        summary.pop(key, None)
    return summary


@pytest.mark.slow
def test_two_processes_train_like_one_then_resume_in_one(tmp_path):
    """python train.py --distributed on 2 processes x 2 devices: one run directory (named by process 0), files written
    once, and metrics.jsonl, the summary and the evaluation bit-identical to 1 process x 4 devices (seeds split).
    Then a 2-process run stopped after 4 updates, its newest checkpoint damaged, resumes on 2 processes (checkpoint 4
    set aside once, 2 restored by both), stops again, and ends in ONE process where the one-process run did, bit for
    bit."""
    t0 = time.monotonic()
    _ok(_train(tmp_path, "one", processes=1, devices=4))
    t1 = time.monotonic()
    results = _train(tmp_path, None, processes=2, devices=2)  # no --run-name: process 0's timestamped name
    t2 = time.monotonic()
    _ok(results)
    runs = tmp_path / "runs"
    made = sorted(p.name for p in runs.iterdir() if p.name != "one")
    assert len(made) == 1 and made[0].startswith("probe:MatchObservation-mlp-"), made
    run_dir = runs / made[0]
    assert (runs / "one" / "metrics.jsonl").read_bytes() == (run_dir / "metrics.jsonl").read_bytes()
    assert _summary(runs / "one") == _summary(run_dir)
    assert json.loads((runs / "one" / "eval.json").read_text()) == json.loads((run_dir / "eval.json").read_text())
    devices = json.loads((run_dir / "devices.json").read_text())
    assert devices["process_count"] == 2 and devices["distributed"]["devices_per_process"] == {"0": 2, "1": 2}
    assert devices["sharded_axis"] == "seeds"
    (_, out0, err0), (_, out1, err1) = results
    # gloo's C++ log lines ("[Gloo] Rank r is connected to n peer ranks ..."), which the two processes' writes can
    # split and interleave, are not ours
    ours = lambda out: [line for line in out.splitlines() if "connected peer ranks" not in line]  # noqa: E731
    assert "Run directory" in out0 and not ours(out1)  # process 0 reports; process 1 prints nothing
    assert "Compiling" in err0 and "Compiling" not in err1

    _ok(_train(tmp_path, "split", processes=2, devices=2, env={"STOP_AFTER_UPDATES": "4"}))
    t3 = time.monotonic()
    split = runs / "split"
    assert json.loads((split / "summary.json").read_text())["status"] == "interrupted"
    assert {"2", "4"} <= {p.name for p in (split / "checkpoints").iterdir()}
    # the newest checkpoint damaged: both processes skip it, process 0 alone sets it aside, both restore 2
    for path in (split / "checkpoints" / "4").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    resumed = launch(
        [TRAIN_WORKER, "--resume", str(split)], tmp_path, processes=2, devices=2, env={"STOP_AFTER_UPDATES": "4"}
    )
    _ok(resumed)
    (_, _, err0), (_, _, err1) = resumed
    assert (
        "skipped damaged checkpoint(s) 4 (" in err0 and "using checkpoint 2" in err0 and "moved to 4.damaged-" in err0
    )
    assert "moved to" not in err1
    assert len([p for p in (split / "checkpoints").iterdir() if p.name.startswith("4.damaged-")]) == 1
    t4 = time.monotonic()
    _ok(launch([TRAIN_WORKER, "--resume", str(split)], tmp_path, processes=1, devices=4))
    assert json.loads((split / "summary.json").read_text())["status"] == "finished"
    assert (runs / "one" / "metrics.jsonl").read_bytes() == (split / "metrics.jsonl").read_bytes()
    print(
        f"1 process x 4 devices: {t1 - t0:.1f} s; 2 processes x 2 devices: {t2 - t1:.1f} s; stopped on 2 processes: "
        f"{t3 - t2:.1f} s; resumed past a damaged checkpoint on 2: {t4 - t3:.1f} s; finished on 1: "
        f"{time.monotonic() - t4:.1f} s"
    )


def _with(args: list[str], **options: str) -> list[str]:
    """FAKE_ARGS with some options' values replaced (``num_seeds="1"`` for ``--num-seeds 1``)."""
    out = list(args)
    for name, value in options.items():
        out[out.index("--" + name.replace("_", "-")) + 1] = value
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "axis, options, extra, exact",
    [
        ("settings", {"num_seeds": "1"}, ["--sweep", "lr=0.01,0.003,0.001,0.0003"], True),
        ("envs", {"num_seeds": "1"}, [], False),
    ],
)
def test_two_processes_split_settings_or_environments_like_one_process(
    tmp_path, monkeypatch, axis, options, extra, exact
):
    """The other two axes the program shards: 4 sweep settings x 1 seed split by settings (no communication between
    processes: bit-identical), and 1 run of 4 environments split by environments (gradients all-reduced across the
    processes: equal within float tolerance, the reduction order differs)."""
    # no evaluation: the first test compares it; here it would only add a compile per launch
    monkeypatch.setattr(sys.modules[__name__], "FAKE_ARGS", _with(FAKE_ARGS, eval_episodes="0", **options))
    _ok(_train(tmp_path, "one", processes=1, devices=4, extra=extra))
    _ok(_train(tmp_path, "two", processes=2, devices=2, extra=extra))
    runs = tmp_path / "runs"
    assert json.loads((runs / "two" / "devices.json").read_text())["sharded_axis"] == axis
    one = [json.loads(line) for line in (runs / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(line) for line in (runs / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) > 0
    if exact:
        assert one == two
    else:
        for a, b in zip(one, two):
            assert a.keys() == b.keys()
            for key, value in a.items():
                if isinstance(value, float):
                    assert value == pytest.approx(b[key], rel=1e-4, abs=1e-6, nan_ok=True), key
                else:
                    assert value == b[key], key


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


LONG_ARGS = [*FAKE_ARGS[: FAKE_ARGS.index("--total-timesteps")], "--total-timesteps", str(4 * 8 * 100_000)]
LONG_ARGS += ["--num-seeds", "4", "--updates-per-chunk", "2", "--checkpoint-every", "0", "--eval-episodes", "0"]


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_with_a_checkpoint(tmp_path):
    """SIGTERM to process 1 only: both stop after the same chunk, save, and exit 143; summary.json says SIGTERM."""
    run_dir = tmp_path / "runs" / "term"
    command = [TRAIN_WORKER, *LONG_ARGS, "--out-dir", str(tmp_path / "runs"), "--run-name", "term"]
    started = start(command, tmp_path, processes=2, devices=2)
    procs, errs = [p for p, _, _ in started], [e for _, _, e in started]
    try:
        deadline = time.monotonic() + 120
        while _lines(run_dir / "metrics.jsonl") < 40 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [e.read_text()[-2000:] for e in errs]
            time.sleep(0.1)
        procs[1].send_signal(signal.SIGTERM)
        sent = time.monotonic()
        codes = [p.wait(timeout=60) for p in procs]
        print(f"both stopped {time.monotonic() - sent:.1f} s after the signal")
    finally:
        kill_all(started)
    assert codes == [143, 143], [e.read_text()[-2000:] for e in errs]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_signal"] == "SIGTERM"
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == summary["updates"]


@pytest.mark.slow
def test_a_killed_process_takes_the_other_down_within_30_seconds_and_the_run_resumes_on_one(tmp_path):
    """SIGKILL to process 1 mid-run: process 0 exits non-zero within 30 s (jax's heartbeat) instead of hanging. Then
    the run resumes in ONE process from its last checkpoint and recomputes, bit for bit, the rows the dead job had
    written after that checkpoint."""
    run_dir = tmp_path / "runs" / "dead"
    args = _with(LONG_ARGS, checkpoint_every="3")  # a checkpoint every 6 updates
    command = [TRAIN_WORKER, *args, "--out-dir", str(tmp_path / "runs"), "--run-name", "dead"]
    env = {"SHM_JAX_HEARTBEAT_TIMEOUT": "5", "SHM_JAX_SHUTDOWN_TIMEOUT": "5"}
    started = start(command, tmp_path, processes=2, devices=2, env=env)
    procs, errs = [p for p, _, _ in started], [e for _, _, e in started]
    checkpoints = run_dir / "checkpoints"
    try:
        deadline = time.monotonic() + 120
        while not (checkpoints / "6").is_dir() or _lines(run_dir / "metrics.jsonl") < 4 * 8:
            assert all(p.poll() is None for p in procs), [e.read_text()[-2000:] for e in errs]
            assert time.monotonic() < deadline, "no checkpoint at update 6 within 120 s"
            time.sleep(0.1)
        os.killpg(procs[1].pid, signal.SIGKILL)
        killed = time.monotonic()
        try:
            code = procs[0].wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        print(f"process 0 exited {code} after {time.monotonic() - killed:.1f} s")
    finally:
        kill_all(started)
    assert code not in (None, 0), errs[0].read_text()[-2000:]

    text = (run_dir / "metrics.jsonl").read_text()
    written = text.splitlines()[: text.count("\n")]  # complete rows only: the dead job may have left half a line
    last = json.loads(written[-1])["update"]
    saved = max(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
    assert saved < last, (saved, last)  # rows after the last checkpoint exist: the resume must recompute them
    stop = (last // 2 + 1) * 2  # the first chunk boundary past the dead job's rows
    resumed = launch(
        [TRAIN_WORKER, "--resume", str(run_dir)],
        tmp_path,
        processes=1,
        devices=4,
        env={"STOP_AFTER_UPDATES": str(stop)},
    )
    _ok(resumed)
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    updates = [json.loads(row)["update"] for row in rows]
    assert updates == sorted(updates) and updates[-1] == stop  # no row twice, none missing at the end
    assert rows[: len(written) - written.count("")] == [w for w in written if w]
