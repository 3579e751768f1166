"""A throwaway Spark standalone cluster (one master, N workers on 127.0.0.1) from the pyspark wheel, and a
driver that runs ingest → silver → features on a synthetic lake against any master.

Why a real cluster: local[N] runs every task inside the driver's JVM, with the driver's Python, the driver's
classpath and the driver's working directory. On a cluster, executors are other JVMs in other folders: they
must fetch the Delta JARs (`spark.jars`), start the right Python (PYSPARK_PYTHON) that can import our package,
and read and write the lake by an absolute path. local[2] cannot show any of that.

The wheel carries `bin/spark-class` but no `sbin/` scripts, so the daemons are started by hand. spark-class
`exec`s the JVM, so the Popen's pid is the JVM; each daemon gets its own session (process group), and the
executors a worker forks (and their Python workers) stay in the worker's group, so killing the groups ends
everything.

The driver half runs as `python -m tests.spark_cluster LAKE OUT --app-name NAME` in its own process (one
SparkContext per Python process: a pytest process may already hold the local[2] session). It writes
OUT/features.parquet (the gold table sorted by key, without computed_at) and OUT/evidence.json (the master,
application id and the executors the driver saw).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from lakehouse.spark import JIT_QUICK

SPARK_HOME = Path(pyspark.__file__).resolve().parent
REPO_ROOT = Path(__file__).resolve().parent.parent
INTERVAL = "1d"
# One shuffle partition per executor core (two 1-core workers; local[2]); both runs use the same.
SHUFFLE_PARTITIONS = 2
# Written by the jobs at run time: differs between any two runs, so it is not content.
RUN_TIME_COLUMNS = ("computed_at",)


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick; a race with another process is possible but rare)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StandaloneCluster:
    master_url: str
    ui_url: str
    base: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def state(self) -> dict:
        """The master's own view (its web UI's /json/): workers, cores, active and completed applications."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            return json.load(response)

    @property
    def work_dirs(self) -> list[Path]:
        """One per worker: each executor's folder (<app id>/<executor id>/) holds its stderr and fetched JARs."""
        return sorted(self.base.glob("worker*"))

    def log_tails(self, chars: int = 2_000) -> str:
        logs = sorted((self.base / "logs").glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)

    def stop(self) -> None:
        """SIGTERM every daemon's process group (executors included), SIGKILL what is left after 10 s."""
        for proc in self.processes:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # the group: a worker's executor may outlive the worker
            proc.wait()
        while any(live_members(p.pid) for p in self.processes) and time.monotonic() < deadline + 5:
            time.sleep(0.1)  # SIGKILL is delivered, not yet acted on
        for jar in self.base.glob("worker*/*/*/*.jar"):
            jar.unlink()  # each executor's copy of spark.jars: 290 MB, of no use once it has gone


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the daemon's pid


def live_members(group: int) -> list[int]:
    """The pids of process group `group` that still run. Zombies do not count: a killed executor orphaned
    by its worker waits, dead, until init reaps it, and `killpg(group, 0)` still finds it then."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # the process ended while we looked
            # pid (comm) state ppid pgrp …; comm may hold spaces and parentheses, so split after the last ')'
            text = stat.read_text()
            state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
            if int(pgrp) == group and state not in ("Z", "X"):
                members.append(int(text.split()[0]))
    return members


def daemon_env(log_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(log_dir),
        # The daemons only bookkeep; their default heap is 1 GiB each. Executors get their own heap.
        "SPARK_DAEMON_MEMORY": "256m",
        # Executor scratch space (shuffle files, the fetched JARs' cache) under the cluster's folder, not /tmp.
        "SPARK_LOCAL_DIRS": str(log_dir.parent / "local"),
        "SPARK_NO_DAEMONIZE": "1",
        # The executors a worker forks inherit this: C1-only JIT, as lakehouse/spark.py gives the local driver
        # (JIT_QUICK), where local[2] runs its tasks. Short jobs on 2 cores: C2's compile threads cost more than
        # they win. The daemons get it too, harmlessly.
        "JAVA_TOOL_OPTIONS": JIT_QUICK,
    }


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def start_cluster(
    base: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g", timeout_s: float = 60
) -> StandaloneCluster:
    """Start a master and `workers` workers under `base` (logs and work dirs there); return once the master
    reports them all alive. On a timeout every daemon is stopped and the error carries their log tails."""
    log_dir = base / "logs"
    log_dir.mkdir(parents=True)
    env = daemon_env(log_dir)
    port, ui_port = free_port(), free_port()
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", base)
    master_class = "org.apache.spark.deploy.master.Master"
    master_args = [master_class, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)]
    cluster.processes.append(_spawn(master_args, log_dir / "master.log", env))
    try:
        for n in range(1, workers + 1):
            work_dir = base / f"worker{n}"
            work_dir.mkdir()
            worker_args = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port", "0"]
            worker_args += ["-c", str(cores), "-m", memory, "-d", str(work_dir), cluster.master_url]
            cluster.processes.append(_spawn(worker_args, log_dir / f"worker{n}.log", env))
        _wait_for_workers(cluster, workers, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for_workers(cluster: StandaloneCluster, workers: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    alive = None
    while time.monotonic() < deadline:
        dead = [p.args for p in cluster.processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a Spark daemon exited during start-up: {dead}\n{cluster.log_tails()}")
        try:
            alive = cluster.state().get("aliveworkers")
        except OSError:
            alive = None  # the master's web UI is not up yet
        if alive == workers:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{alive} of {workers} workers alive after {timeout_s:.0f} s\n{cluster.log_tails()}")


@dataclass
class PipelineRun:
    """A driver process running ingest → silver → features; its output goes to files under `out`, so two runs
    can go side by side without either blocking on a full pipe."""

    out: Path
    process: subprocess.Popen[bytes]

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the driver if it still runs; its JVM exits when the pipe from its Python parent closes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self, chars: int = 6_000) -> str:
        return "\n".join(
            f"--- {name}\n{(self.out / name).read_text(errors='replace')[-chars:]}" for name in ("stdout", "stderr")
        )

    def evidence(self) -> dict:
        return json.loads((self.out / "evidence.json").read_text())

    @property
    def features(self) -> Path:
        return self.out / "features.parquet"


def start_pipeline(lake: Path, out: Path, *, master: str, app_name: str, symbols: int, bars: int) -> PipelineRun:
    """Start `python -m tests.spark_cluster` (the three jobs, then the dump) in a fresh process on `master`."""
    env = {
        **os.environ,
        "CANDLELAKE_SPARK_MASTER": master,
        "PYSPARK_PYTHON": sys.executable,  # the executors' Python workers: the venv, where our package is installed
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    command = [sys.executable, "-m", "tests.spark_cluster", str(lake), str(out), "--app-name", app_name]
    command += ["--symbols", str(symbols), "--bars", str(bars)]
    out.mkdir(parents=True)
    with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=stdout, stderr=stderr)
    return PipelineRun(out, process)


def _run_jobs(lake: Path, symbols: int, bars: int) -> None:
    from glue_jobs import build_features, build_silver, ingest_candles

    # Every job gets the same flags, as the state machine passes them: build_silver and build_features read
    # the symbols from the configuration too, and without --source synthetic they would look for the sample's.
    argv = ["--lake-root", str(lake), "--intervals", INTERVAL, "--source", "synthetic"]
    argv += ["--synthetic-symbols", str(symbols), "--synthetic-bars", str(bars)]
    for job in (ingest_candles, build_silver, build_features):
        code = job.main(argv)
        if code != 0:
            raise SystemExit(f"{job.__name__} exited {code}")


def _executor_ids(spark: object) -> list[str]:
    """The ids of the executors the driver's scheduler holds: none on local[N], whose one backend is no
    ExecutorAllocationClient (Spark logs a warning and answers an empty list)."""
    ids = spark.sparkContext._jsc.sc().getExecutorIds()  # type: ignore[attr-defined]
    return [str(ids.apply(i)) for i in range(ids.size())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.spark_cluster", description=__doc__)
    parser.add_argument("lake", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--app-name", required=True)
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--bars", type=int, default=300)
    args = parser.parse_args(argv)

    from lakehouse import delta_io
    from lakehouse.spark import get_spark
    from lakehouse.tables import gold_features

    # The first get_spark names the application; the jobs' own get_spark calls reuse this session.
    spark = get_spark(args.app_name, shuffle_partitions=SHUFFLE_PARTITIONS)
    _run_jobs(args.lake.resolve(), args.symbols, args.bars)
    gold = gold_features(INTERVAL)
    frame = delta_io.read(spark, gold, str(args.lake.resolve())).drop(*RUN_TIME_COLUMNS).orderBy(*gold.key).toPandas()
    frame.to_parquet(args.out / "features.parquet", index=False)
    sc = spark.sparkContext
    evidence = {
        "master": sc.master,
        "app_id": sc.applicationId,
        "app_name": sc.appName,
        "executors": _executor_ids(spark),
    }
    (args.out / "evidence.json").write_text(json.dumps(evidence, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
