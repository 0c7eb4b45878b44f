"""`lambda-speed` / `make speed`: run the speed job in the foreground until stopped.

Resumes from the newest complete checkpoint by default; with --bounded it reads to the current
end offsets and finishes (tests, backfills). With LAMBDA_FLINK_JOBMANAGER set (`make speed
CLUSTER=1`) the job is submitted to that session cluster instead and the command returns once it
runs; `--stop` (`make speed-stop CLUSTER=1`) stops it there with a savepoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from lambda_contract.settings import Settings, SettingsError
from speed_layer import checkpoints, cluster

log = logging.getLogger("speed_layer")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _log_to_stderr() -> None:
    """The layer's log lines go to stderr whatever happens to the root logger: a local job runs
    its Python operators in this process (PyFlink's loopback mode), and their Beam worker replaces
    the root logger's handlers with one that forwards to Flink's log."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lambda-speed", description=__doc__)
    p.add_argument("--bounded", action="store_true", help="stop at the end offsets seen at start")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--restore", metavar="URI", help="resume from this checkpoint or savepoint")
    p.add_argument(
        "--group-id", default="lambda-speed", help="Kafka consumer group (offsets are checkpointed)"
    )
    p.add_argument("--print-sql", action="store_true", help="print the generated SQL and exit")
    p.add_argument(
        "--stop",
        action="store_true",
        help="stop the job on the session cluster (LAMBDA_FLINK_JOBMANAGER) with a savepoint",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    _log_to_stderr()
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"lambda-speed: {exc}", file=sys.stderr)
        return 2
    if args.print_sql:
        from speed_layer import sql

        print(
            sql.parse_query(),
            sql.judge_query(settings),
            sql.classify_query(),
            sql.dlq_insert(),
            sql.late_insert(),
            sql.updates_query(settings),
            sep="\n;\n",
        )
        return 0
    if args.stop:
        return stop(settings)
    if settings.flink_jobmanager and not cluster.started_by_flink():
        return submit(settings, args)
    restore = args.restore or (None if args.fresh else checkpoints.latest_complete(settings.checkpoint_url))
    log.info(
        "checkpoints in %s; %s",
        settings.checkpoint_url,
        f"resuming from {restore}" if restore else "starting fresh",
    )

    from speed_layer import job

    os.environ.setdefault("FLINK_PLUGINS_DIR", str(job.plugins_dir(settings)))
    options = job.JobOptions(bounded=args.bounded, restore_from=restore, group_id=args.group_id)
    env = job.build(settings, options)
    if args.bounded:
        env.execute("lambda-speed")
        return 0
    return run_until_stopped(env, settings)


def run_until_stopped(env: Any, settings: Settings) -> int:
    """Run the streaming job until SIGINT or SIGTERM, then stop it with a savepoint.

    A savepoint (not a cancel) is what an upgrade or a rescale restores: every operator's state
    at one consistent point, with the sink's final flush done. The signal goes to this process
    only: PyFlink's JVM ignores SIGINT, and a SIGTERM to the whole group would stop the JVM
    before the savepoint is written.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    client = env.execute_async("lambda-speed")
    last = ""
    while not stop.wait(1.0):
        status = str(client.get_job_status().result()).rsplit(".", 1)[-1]
        if status != last:
            log.info("job %s: %s", client.get_job_id(), status)
            last = status
        if status in ("FINISHED", "FAILED", "CANCELED"):
            client.get_job_execution_result().result()  # raises the failure's cause
            return 0
    target = checkpoints.savepoint_dir(settings.checkpoint_url)
    log.info("stopping with a savepoint in %s", target)
    try:
        path = _stop_with_savepoint(client, target)
    except Exception as exc:  # the JVM got the signal too (a whole process group was stopped)
        log.warning("no savepoint (%s); the next start resumes from the newest checkpoint", exc)
        return 0
    log.info("savepoint written: %s (the next start resumes from it)", path)
    return 0


def _stop_with_savepoint(client: Any, target: str) -> str:
    """JobClient.stopWithSavepoint, called directly: PyFlink 2.2's wrapper still passes the two
    arguments of Flink 1.x, and the Java method now also takes the savepoint's format."""
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    return str(client._j_job_client.stopWithSavepoint(False, target, canonical).get())


SUBMIT_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 300.0


def submit(settings: Settings, args: argparse.Namespace) -> int:
    """Submit the job to the session cluster, resuming from the newest complete checkpoint or
    savepoint under LAMBDA_CHECKPOINT_DIR; return once it and all its tasks are RUNNING (print its
    id and UI). --bounded waits until it finished instead. One lambda-speed job at a time."""
    began = time.monotonic()
    session = cluster.SessionCluster(settings)
    try:
        running = session.active_jobs()
        if running:
            print(
                f"lambda-speed: a {cluster.JOB_NAME} job is already running on {session.url}: "
                f"{', '.join(running)} ({session.ui(running[0])}); stop it first with "
                "`make speed-stop CLUSTER=1`",
                file=sys.stderr,
            )
            return 1
        found = None if args.fresh else checkpoints.latest_complete(settings.checkpoint_url, settings)
        restore = args.restore or found
        log.info(
            "submitting to %s; checkpoints in %s; %s",
            session.url,
            settings.checkpoint_url,
            f"resuming from {restore}" if restore else "starting fresh",
        )
        from speed_layer import job

        os.environ.setdefault("FLINK_PLUGINS_DIR", str(job.plugins_dir(settings)))
        options = job.JobOptions(bounded=args.bounded, restore_from=restore, group_id=args.group_id)
        env = job.build(settings, options)
        if session.active_jobs():  # another client submitted one while this one was planning
            raise RuntimeError(f"a {cluster.JOB_NAME} job started on {session.url} meanwhile; not submitting")
        client = env.execute_async(cluster.JOB_NAME)
        job_id = str(client.get_job_id())
        submitted = time.monotonic()
        log.info("job %s submitted: %s", job_id, session.ui(job_id))
        if args.bounded:
            client.get_job_execution_result().result()  # raises the failure's cause
            return 0
        try:
            session.wait_running(job_id, SUBMIT_TIMEOUT_S)
        except RuntimeError:
            session.cancel(job_id)  # a job that cannot start is not left restarting there
            raise
    except RuntimeError as exc:
        print(f"lambda-speed: {exc}", file=sys.stderr)
        return 1
    now = time.monotonic()
    log.info(
        "job %s RUNNING %.1f s after submission (%.1f s after this command started)",
        job_id,
        now - submitted,
        now - began,
    )
    print(f"job {job_id} RUNNING on {session.url}\n{session.ui(job_id)}", flush=True)
    return 0


def stop(settings: Settings) -> int:
    """Stop the session cluster's lambda-speed job with a savepoint under <checkpoint dir>/savepoints
    (where the next submission finds it) and wait until it has ended."""
    if not settings.flink_jobmanager:
        print(
            "lambda-speed: no session cluster (LAMBDA_FLINK_JOBMANAGER is empty): a local job "
            "(`make speed`) stops with Ctrl-C, which writes a savepoint; `make speed-stop CLUSTER=1` "
            "stops the cluster's",
            file=sys.stderr,
        )
        return 2
    session = cluster.SessionCluster(settings)
    target = checkpoints.savepoint_dir(settings.checkpoint_url)
    try:
        running = session.active_jobs()
        if not running:
            print(f"lambda-speed: no {cluster.JOB_NAME} job is running on {session.url}", file=sys.stderr)
            return 1
        for job_id in running:
            log.info("stopping job %s with a savepoint in %s", job_id, target)
            path = session.stop_with_savepoint(job_id, target, STOP_TIMEOUT_S)
            state = session.wait_ended(job_id, STOP_TIMEOUT_S)
            print(f"job {job_id} {state}; savepoint: {path}", flush=True)
    except RuntimeError as exc:
        print(f"lambda-speed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
