"""`make demo`: the whole platform on this machine, from an empty checkout to a live dashboard.

Starts the local services, produces yesterday's complete history and today's so far (with
duplicates, late and malformed events), runs the speed layer, the nightly batch for yesterday, the
serving layer and a live generator, prints the dashboard URL with a token and the reconciliation
summary, then runs until Ctrl-C or DEMO_SECONDS. Either way it stops everything it started.

Each layer runs as its own process from its own environment, as in production. The demo owns
its data (lambda_tools.demo_data) and replaces it on every run, unless DEMO_KEEP=1.

Every wait shows what it waits for and how far along it is on one status line (lambda_tools.progress):
records the speed layer has consumed, the batch's last log line, seconds of the live run.

`make demo CLUSTER=1` (--cluster) tells the same story on the cluster (docs/cluster.md): the
engines from `lambda-services up --cluster`, the speed job submitted to the Flink session cluster
(`lambda-speed` returns once it runs; the demo stops it at the end), the nightly batch on the Spark
cluster, both serving replicas (lambda_tools.cluster.serving), the demo's tables and checkpoints on
the object store. Each layer's own entry point does the work, as in single-node mode.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO

from kafka.errors import KafkaError

from lambda_contract.settings import Settings, SettingsError
from lambda_tools import cluster as cluster_mode
from lambda_tools import demo_data, kafka_calls, progress, services
from lambda_tools.cluster import serving as serving_replicas
from lambda_tools.demo_data import SPEED_GROUP
from lambda_tools.progress import Progress, heartbeat

REPO = Path(__file__).resolve().parents[3]
VENVS = REPO / ".venvs"


PREFIX = "[demo] "


def say(text: str) -> None:
    print(f"\033[1m[demo]\033[0m {text}", flush=True)


def status(what: str, total: int | None = None, unit: str = "") -> Progress:
    """The demo's status line for one wait."""
    return Progress(what, total, unit=unit, prefix=PREFIX)


@dataclass
class Demo:
    settings: Settings
    history_events: int
    live_rate: float
    seconds: float | None
    env: dict[str, str]
    cluster: bool = False
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    started_services: list[str] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    speed_submitted: bool = False  # cluster mode: the speed job runs in the session cluster

    @property
    def log_dir(self) -> Path:
        return self.settings.state_path / "logs"

    def background(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"demo-{name}.log").open("ab")
        self.logs.append(log)
        proc = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self.procs.append((name, proc))
        say(f"started {name} (pid {proc.pid}, log {self.log_dir / f'demo-{name}.log'})")
        return proc

    def foreground(self, what: str, argv: list[str], ok: tuple[int, ...] = (0,)) -> int:
        """Run a step to its end; its output scrolls above a status line with its elapsed time."""
        with status(what) as line:
            code = progress.run(line, argv, cwd=REPO, env=self.env)
        if code not in ok:
            raise DemoError(f"{what}: {Path(argv[0]).name} exited {code}")
        return code

    # -- steps ------------------------------------------------------------------------------------

    def start_services(self) -> None:
        if self.cluster:
            state = self.settings.state_path
            wanted = ["pushgateway", "prometheus"] + [
                n for engine in cluster_mode.ENGINES for n in cluster_mode.PROCESSES[engine]
            ]
            missing = [name for name in wanted if services.running_pid(state, name) is None]
        else:
            before = services.status(self.settings)
            missing = [name for name, pid in before.items() if pid is None]
        what = "starting " + (", ".join(missing) or "nothing: the services are running")
        with status(what) as line, heartbeat(line):
            services.up(self.settings, cluster=self.cluster)
        self.started_services = missing
        say(services.ready_line(self.settings))

    def replace_data(self) -> None:
        """Start from the same clean story as any earlier run: empty topics, tables and checkpoints."""
        say("replacing the demo's data from any earlier run (DEMO_KEEP=1 keeps it):")
        with status("clearing topics, Redis keys, tables and checkpoints") as line, heartbeat(line):
            for cleared in demo_data.replace(self.settings):
                line.write(f"    cleared     {cleared}")

    def produce_history(self, now: datetime) -> None:
        yesterday = (now - timedelta(days=1)).date()
        gen = str(VENVS / "tools" / "bin" / "lambda-generate")
        truth_dir = demo_data.truth_dir(self.settings)
        self.foreground(
            f"producing yesterday's history ({yesterday}, {self.history_events} events)",
            [gen, "history", "--date", yesterday.isoformat(), "--events", str(self.history_events),
             "--truth", str(truth_dir / f"demo-{yesterday}.json")],
        )  # fmt: skip
        today_events = max(1, int(self.history_events * (now.hour * 60 + now.minute) / 1440))
        self.foreground(
            f"producing today's traffic so far ({now.date()} until {now:%H:%M} UTC, {today_events} events)",
            [gen, "history", "--date", now.date().isoformat(), "--until", now.isoformat(), "--events",
             str(today_events), "--truth", str(truth_dir / f"demo-{now.date()}-so-far.json")],
        )  # fmt: skip

    def start_speed(self) -> None:
        argv = [str(VENVS / "speed" / "bin" / "lambda-speed"), "--group-id", SPEED_GROUP]
        if self.cluster:  # lambda-speed submits the job to LAMBDA_FLINK_JOBMANAGER and returns once it runs
            self.foreground(
                f"submitting the speed job to the Flink session cluster ({self.settings.flink_jobmanager})",
                argv,
            )
            self.speed_submitted = True
        else:
            self.background("speed", argv)

    def wait_for_speed(self, timeout_s: float = 600) -> None:
        """Caught up when the job's committed offsets (at each checkpoint) reach the topic's end."""
        topic = self.settings.topic_orders
        deadline = time.monotonic() + timeout_s
        with (
            status(f"waiting for the speed layer to consume {topic}", unit="records") as line,
            heartbeat(line),
        ):
            total = self.topic_end(topic)
            line.update(done=0, total=total, detail="starting (no checkpoint yet)")
            while time.monotonic() < deadline:
                self.check_alive()
                lag = kafka_calls.group_lag(self.settings.kafka_bootstrap, SPEED_GROUP, topic)
                if lag is not None:
                    line.update(
                        done=max(0, total - lag), detail=f"lag {lag:,} (committed at each checkpoint)"
                    )
                if lag == 0:
                    line.update(done=total)
                    break
                time.sleep(2)
        if lag == 0:
            say("speed layer caught up")
            return
        raise DemoError(
            f"the speed layer did not catch up within {timeout_s:.0f}s (see {self.log_dir}/demo-speed.log)"
        )

    def topic_end(self, topic: str) -> int:
        """Records in the topic (the sum of its partitions' end offsets): the speed layer's total."""
        bootstrap = self.settings.kafka_bootstrap
        with kafka_calls.consumer_client(bootstrap) as consumer:
            parts = kafka_calls.partitions(consumer, topic)
            ends = kafka_calls.retry(
                f"report the end offsets of {topic!r}", lambda: consumer.end_offsets(parts)
            )
        return sum(int(v) for v in ends.values())

    def run_batch(self, now: datetime) -> None:
        yesterday = (now - timedelta(days=1)).date()
        self.foreground(
            f"running the nightly batch for {yesterday} (ingest to bronze, recompute gold)",
            [str(VENVS / "batch" / "bin" / "lambda-batch"), "run", "--date", yesterday.isoformat()],
        )

    def start_serving(self) -> str:
        token = self.api_token()
        self.env["LAMBDA_API_TOKENS"] = token
        if self.cluster:
            self.start_replicas()
            return token
        self.background("serving", [str(VENVS / "serving" / "bin" / "lambda-serve")])
        url = f"http://localhost:{self.settings.api_port}"
        deadline = time.monotonic() + 60
        with status(f"waiting for the serving layer to answer {url}/healthz") as line:
            while time.monotonic() < deadline:
                self.check_alive()
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=2).close()  # noqa: S310 (local URL)
                    return token
                except OSError as exc:
                    line.update(detail=f"not yet: {getattr(exc, 'reason', exc)}")
                    time.sleep(0.3)
        raise DemoError("the serving layer did not answer /healthz within 60 s")

    def api_token(self) -> str:
        return serving_replicas.api_token(self.settings)

    def start_replicas(self) -> None:
        """Both replicas on the demo's data; running ones (`make serve CLUSTER=1` on the main
        tables) are stopped first: they hold no state, and `make serve CLUSTER=1` brings them back."""
        state = self.settings.state_path
        for name in serving_replicas.PORTS:
            pid = services.running_pid(state, name)
            if pid is not None:
                say(f"stopping {name} (pid {pid}): the demo's replicas serve the demo's data")
                services.stop_pid(pid)
        with status("starting serving-1 and serving-2, waiting for /readyz") as line, heartbeat(line):
            started = serving_replicas.start(self.settings, state, self.env)
        self.started_services += started
        for name, url in serving_replicas.urls().items():
            say(f"started {name} at {url} (log {self.log_dir / f'{name}.log'})")

    def start_live(self) -> None:
        gen = str(VENVS / "tools" / "bin" / "lambda-generate")
        truth = demo_data.truth_dir(self.settings) / "demo-live.json"
        self.background("live-traffic", [gen, "live", "--rate", str(self.live_rate), "--truth", str(truth)])

    def reconcile(self, now: datetime) -> None:
        yesterday = (now - timedelta(days=1)).date()
        self.foreground(
            f"reconciling {yesterday}: speed view against gold",
            [str(VENVS / "serving" / "bin" / "lambda-reconcile"), "--date", yesterday.isoformat()],
            ok=(0, 3),
        )

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise DemoError(
                    f"{name} stopped unexpectedly (exit {proc.returncode}); see {self.log_dir}/demo-{name}.log"
                )

    def stop_speed_job(self) -> None:
        """Cluster mode: the demo's job leaves the session cluster (its savepoint is the demo's,
        replaced by the next run)."""
        argv = [str(VENVS / "speed" / "bin" / "lambda-speed"), "--stop"]
        with status("stopping the speed job in the Flink session cluster") as line:
            code = progress.run(line, argv, cwd=REPO, env=self.env)
        if code != 0:
            say(f"the speed job did not stop (exit {code}): see `make speed-stop CLUSTER=1`")

    def stop(self) -> None:
        if self.speed_submitted:
            self.stop_speed_job()
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                # SIGINT lets the generator flush and write its truth; the others stop on it too.
                os.killpg(proc.pid, signal.SIGINT)
        with status("stopping what the demo started") as line, heartbeat(line):
            for name, proc in reversed(self.procs):
                line.update(detail=f"waiting for {name} (pid {proc.pid}) to exit")
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                line.write(f"\033[1m[demo]\033[0m stopped {name}")
            for log in self.logs:
                log.close()
            if self.started_services:
                line.update(detail="stopping " + ", ".join(self.started_services))
                if self.cluster:  # exactly those: the cluster may serve others too
                    for name in reversed(self.started_services):
                        pid = services.running_pid(self.settings.state_path, name)
                        if pid is not None:
                            services.stop_pid(pid)
                        services.pid_file(self.settings.state_path, name).unlink(missing_ok=True)
                else:
                    services.down(self.settings)
                line.write(
                    "\033[1m[demo]\033[0m stopped the services the demo started: "
                    + ", ".join(self.started_services)
                )


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and where its log is."""


def _install_stop(flag: list[bool]) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        flag.append(True)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def main(argv: list[str] | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="on the cluster (make demo CLUSTER=1)")
    cluster = parser.parse_args(argv).cluster
    try:
        env = demo_data.demo_environment(os.environ, cluster=cluster)
        settings = Settings.from_env(env)
        demo_data.data_dirs(settings)  # refuses remote storage before anything starts
        seconds_env = os.environ.get("DEMO_SECONDS", "").strip()
        seconds = float(seconds_env) if seconds_env else None
        if seconds is not None and seconds <= 0:
            raise ValueError("DEMO_SECONDS must be a positive number of seconds")
        history_events = int(os.environ.get("DEMO_EVENTS", "60000"))
        rate = float(os.environ.get("DEMO_RATE", "20"))
        keep = os.environ.get("DEMO_KEEP", "") not in ("", "0")
    except (SettingsError, ValueError, demo_data.DemoDataError) as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 2
    demo = Demo(settings, history_events, rate, seconds, env, cluster=cluster)
    stop: list[bool] = []
    t0 = time.monotonic()
    try:
        _install_stop(stop)
        now = clock()
        demo.start_services()
        if not keep:
            demo.replace_data()
        demo.produce_history(now)
        demo.start_speed()
        demo.wait_for_speed()
        demo.run_batch(now)
        token = demo.start_serving()
        demo.start_live()
        demo.reconcile(now)
        url = f"http://localhost:{settings.api_port}"
        say("the platform is live:")
        if cluster:
            url = serving_replicas.urls()["serving-1"]
            print(f"    replicas    {', '.join(serving_replicas.urls().values())} (the same answers)")
        print(f"    dashboard   {url}/#token={token}")
        print(f"    API docs    {url}/docs")
        print(f'    curl        curl -H "Authorization: Bearer {token}" "{url}/v1/revenue/hourly?start='
              f'{(now - timedelta(hours=24)):%Y-%m-%dT%H}:00:00Z&end={(now + timedelta(hours=1)):%Y-%m-%dT%H}:00:00Z&group_by=region"')  # fmt: skip
        print(f"    metrics     http://localhost:{settings.prometheus_port} (Prometheus)")
        print(
            f"    report      {settings.path(settings.reports_dir)}/reconciliation-{(now - timedelta(days=1)).date()}.html"
        )
        say("running until Ctrl-C" + (f" or {seconds:.0f} s" if seconds else ""))
        live_from = time.monotonic()
        total = max(1, int(seconds - (live_from - t0))) if seconds else None
        with status("live: generator, speed layer and serving running", total, unit="s") as line:
            while not stop and (seconds is None or time.monotonic() - t0 < seconds):
                demo.check_alive()
                line.update(done=int(time.monotonic() - live_from), detail="Ctrl-C stops the demo")
                time.sleep(1)
        return 0
    except (DemoError, services.ServiceError, demo_data.DemoDataError, kafka_calls.KafkaUnavailableError,
            KafkaError, OSError) as exc:  # fmt: skip
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
