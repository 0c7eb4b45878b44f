"""`lambda-speed` / `make speed`: run the speed job in the foreground until stopped.

Resumes from the newest complete checkpoint by default; with --bounded it reads to the current
end offsets and finishes (tests, backfills).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lambda_contract.settings import Settings, SettingsError
from speed_layer import checkpoints

log = logging.getLogger("speed_layer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lambda-speed", description=__doc__)
    p.add_argument("--bounded", action="store_true", help="stop at the end offsets seen at start")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--restore", metavar="URI", help="resume from this checkpoint or savepoint")
    p.add_argument(
        "--group-id", default="lambda-speed", help="Kafka consumer group (offsets are checkpointed)"
    )
    p.add_argument("--print-sql", action="store_true", help="print the generated SQL and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
            sql.classify_query(settings),
            sql.dlq_insert(),
            sql.late_insert(),
            sql.updates_query(settings),
            sep="\n;\n",
        )
        return 0
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
    env.execute("lambda-speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
