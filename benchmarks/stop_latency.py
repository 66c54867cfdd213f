"""How promptly does a run react to Ctrl-C / SIGTERM? Measured on the real command line.

Starts ``python train.py <args>``, waits until the training program is compiled and ``--after`` seconds
of the first update have passed (the update is then running), sends the signal, and records: the time
until the acknowledgement line appears on stderr, the time until the process exits, its exit code, how
many updates the run had done when the signal came and when it stopped (a stop "within one update"
means at most one more), and whether the newest checkpoint holds that last update.

    python -m benchmarks.stop_latency --preset paper-popgym --env RepeatPreviousEasy --num-seeds 1

writes ``benchmarks/results/stop_latency_<name>.json`` and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, RESULTS_DIR, load_average


def _updates_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    return len({json.loads(line)["update"] for line in path.read_text().splitlines() if line.strip()})


def measure(train_args: list[str], *, after: float, signum: int, timeout: float) -> dict:
    """Run train.py with ``train_args`` once and signal it ``after`` seconds into training."""
    out = Path(tempfile.mkdtemp(prefix="stop_latency_"))
    argv = [sys.executable, str(REPO_ROOT / "train.py"), *train_args, "--out-dir", str(out), "--run-name", "run"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        lines.extend((time.monotonic(), line) for line in proc.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def seen(text: str) -> float | None:
        return next((t for t, line in list(lines) if text in line), None)

    start = time.monotonic()
    while seen("Compiled in") is None and proc.poll() is None and time.monotonic() - start < timeout:
        time.sleep(0.05)
    compiled_at = seen("Compiled in")
    if compiled_at is None:
        raise RuntimeError("train.py did not compile: " + "".join(line for _, line in lines)[-2000:])
    time.sleep(after)
    run_dir = out / "run"
    done_at_signal = _updates_logged(run_dir)
    sent = time.monotonic()
    proc.send_signal(signum)
    code = proc.wait(timeout=timeout)
    exited = time.monotonic()
    reader.join(5)
    name = signal.Signals(signum).name
    acked = seen(f"{name} received")
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    checkpoints = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    return {
        "signal": name,
        "exit_code": code,
        "compile_s": round(compiled_at - start, 1),
        "signal_after_compile_s": round(sent - compiled_at, 1),
        "ack_s": None if acked is None else round(acked - sent, 3),
        "exit_s": round(exited - sent, 1),
        "updates_done_at_signal": done_at_signal,
        "updates_done_at_stop": summary.get("updates"),
        "newest_checkpoint": checkpoints[-1] if checkpoints else None,
        "status": summary.get("status"),
        "ack_line": next((line.strip() for _, line in lines if f"{name} received" in line), None),
    }


def markdown(record: dict) -> str:
    r = record["result"]
    rows = [
        ("command", "`python train.py " + " ".join(record["train_args"]) + "`"),
        ("machine", f"{record['machine']} (load before: {record['load_before']}, after: {record['load_after']})"),
        ("signal sent", f"{r['signal']}, {r['signal_after_compile_s']} s after compiling (compile {r['compile_s']} s)"),
        ("acknowledged after", f"{r['ack_s']} s: `{r['ack_line']}`"),
        ("exited after", f"{r['exit_s']} s with code {r['exit_code']}"),
        ("updates done at the signal / at the stop", f"{r['updates_done_at_signal']} / {r['updates_done_at_stop']}"),
        ("newest checkpoint", f"update {r['newest_checkpoint']} (status {r['status']})"),
    ]
    return "\n".join(["# Stop latency", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""])


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="paper_popgym", help="results file suffix")
    parser.add_argument("--after", type=float, default=30.0, help="seconds after compiling to send the signal")
    parser.add_argument("--signal", choices=("SIGINT", "SIGTERM"), default="SIGINT")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args, train_args = parser.parse_known_args(argv)
    load_before = load_average()
    result = measure(train_args, after=args.after, signum=signal.Signals[args.signal], timeout=args.timeout)
    record = {
        "benchmark": "stop_latency",
        "train_args": train_args,
        "result": result,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_before": load_before,
        "load_after": load_average(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"stop_latency_{args.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return path


if __name__ == "__main__":
    main()
