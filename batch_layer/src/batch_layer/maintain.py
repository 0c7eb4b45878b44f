"""Table maintenance: compaction (OPTIMIZE) and VACUUM with a safe retention.

Retention below 7 days could delete files a running reader or a time-travel query still needs,
and the bronze stream's own files; it is refused unless forced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from batch_layer import delta_tables
from lambda_contract.settings import Settings
from lambda_contract.tables import TABLES

log = logging.getLogger(__name__)

MIN_RETENTION_HOURS = 7 * 24


class UnsafeRetentionError(ValueError):
    pass


def check_retention(hours: int, force: bool) -> None:
    if hours < 0:
        raise UnsafeRetentionError(f"retention must be >= 0 hours, got {hours}")
    if hours < MIN_RETENTION_HOURS and not force:
        raise UnsafeRetentionError(
            f"retention {hours} h is below the safe minimum of {MIN_RETENTION_HOURS} h (7 days); "
            "pass --force to vacuum anyway"
        )


@dataclass(frozen=True)
class MaintainResult:
    table: str
    files_compacted: int


def maintain(
    spark: SparkSession, settings: Settings, retention_hours: int, force: bool
) -> list[MaintainResult]:
    check_retention(retention_hours, force)
    if force:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    results = []
    for table in TABLES:
        if not delta_tables.exists(spark, settings, table):
            log.info("maintain: %s does not exist yet, skipped", table.name)
            continue
        dt = DeltaTable.forPath(spark, delta_tables.url(settings, table))
        log.info("maintain: optimizing %s", table.name)
        metrics = dt.optimize().executeCompaction().select("metrics.numFilesRemoved").collect()
        compacted = int(metrics[0][0]) if metrics else 0
        log.info("maintain: vacuuming %s (retain %d h)", table.name, retention_hours)
        dt.vacuum(float(retention_hours))
        results.append(MaintainResult(table.name, compacted))
    return results
