"""Where the generator's time goes: CPU per record of each stage, and the records/s of all of them.

    .venvs/tools/bin/python -m lambda_tools.generator_bench --events 100000 [--topic SCRATCH_TOPIC]

Stages: generate (the pure model), truth (compute_truth over the generated records), send
(kafka-python, records already generated; only with --topic, which must exist and will receive
the records twice), all (generate + send + truth in one process, as one worker runs). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lambda_contract.settings import Settings
from lambda_contract.windows import from_epoch_ms
from lambda_testkit.truth import SentRecord, compute_truth
from lambda_tools.generator import GeneratorConfig, history, range_bounds
from lambda_tools.producer import OrdersProducer, ProducerTuning, send_all


def _measure(n: int, work: Callable[[], object]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_record": round(cpu / n * 1e6, 1), "records_per_s": round(n / wall)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generator_bench", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--topic", default=None, help="scratch topic for the Kafka stages (omit to skip them)"
    )
    parser.add_argument("--linger-ms", type=int, default=ProducerTuning.linger_ms)
    parser.add_argument("--batch-size", type=int, default=ProducerTuning.batch_size)
    parser.add_argument("--compression", default=None, help="lz4, gzip, ... (default: none)")
    args = parser.parse_args(argv)
    n = args.events
    config = GeneratorConfig(seed=7)
    # Yesterday: records stamped with their event times stay within a scratch topic's time retention.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start, end = range_bounds(yesterday, yesterday)
    out: dict[str, object] = {"events": n, "load_average": os.getloadavg()[0], "cpus": os.cpu_count()}
    out["generate"] = _measure(n, lambda: list(history(config, start, end, n)))
    records = list(history(config, start, end, n))
    out["truth"] = _measure(
        n, lambda: compute_truth(SentRecord(r.value, from_epoch_ms(r.timestamp_ms), r.late) for r in records)
    )
    if args.topic:
        settings = Settings.from_env()
        tuning = ProducerTuning(
            linger_ms=args.linger_ms, batch_size=args.batch_size, compression=args.compression
        )
        out["tuning"] = {
            "linger_ms": args.linger_ms,
            "batch_size": args.batch_size,
            "compression": args.compression,
        }
        producer = OrdersProducer(settings.kafka_bootstrap, args.topic, tuning)

        def send() -> None:
            for r in records:
                producer.send(r, r.timestamp_ms)
            producer.flush()

        out["send"] = _measure(n, send)

        def everything() -> None:
            compute_truth(send_all(history(config, start, end, n), producer.send))
            producer.flush()

        out["all"] = _measure(n, everything)
        producer.close()
        producer.check()
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
