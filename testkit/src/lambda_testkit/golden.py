"""The golden data set: curated records (testkit/golden/events.jsonl) and their exact ground truth
(testkit/golden/expected.json). Every layer's tests check themselves against it, because Flink and
Spark evaluate the contract in the JVM and sharing Python code alone does not prove they agree.

    python -m lambda_testkit.golden build   # rewrite both files from lambda_testkit.golden_cases
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lambda_contract.windows import from_epoch_ms, to_epoch_ms
from lambda_testkit.truth import SentRecord, Truth, compute_truth

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden"
EVENTS_PATH = GOLDEN_DIR / "events.jsonl"
EXPECTED_PATH = GOLDEN_DIR / "expected.json"


@dataclass(frozen=True)
class GoldenRecord:
    """One Kafka record of the golden set, in production order."""

    seq: int
    partition: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    phase: int
    expect: str  # "valid" | "duplicate" | "late" | a Reason value
    note: str

    @property
    def timestamp(self) -> datetime:
        return from_epoch_ms(self.timestamp_ms)

    @property
    def kafka_record(self) -> tuple[int, bytes | None, bytes | None, int]:
        """(partition, key, value, timestamp_ms): how `sandbox.produce` sends it."""
        return (self.partition, self.key, self.value, self.timestamp_ms)

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"seq": self.seq, "partition": self.partition}
        doc["key"] = self.key.decode() if self.key is not None else None
        if self.value is None:
            doc["value"] = None
        else:
            try:
                doc["value"] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                doc["value_b64"] = base64.b64encode(self.value).decode()
        doc |= {
            "timestamp_ms": self.timestamp_ms,
            "phase": self.phase,
            "expect": self.expect,
            "note": self.note,
        }
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> GoldenRecord:
        if "value_b64" in doc:
            value: bytes | None = base64.b64decode(str(doc["value_b64"]))
        else:
            value = None if doc["value"] is None else str(doc["value"]).encode("utf-8")
        key = doc.get("key")
        return cls(
            seq=int(str(doc["seq"])),
            partition=int(str(doc["partition"])),
            key=None if key is None else str(key).encode(),
            value=value,
            timestamp_ms=int(str(doc["timestamp_ms"])),
            phase=int(str(doc["phase"])),
            expect=str(doc["expect"]),
            note=str(doc.get("note", "")),
        )


def records() -> list[GoldenRecord]:
    """The golden records in production order."""
    with EVENTS_PATH.open(encoding="utf-8") as f:
        return [GoldenRecord.from_json(json.loads(line)) for line in f if line.strip()]


def truth() -> Truth:
    """The committed expected views."""
    return Truth.load(EXPECTED_PATH)


def compute(recs: list[GoldenRecord]) -> Truth:
    """Recompute the truth from records with the reference validator (phase 2 = late)."""
    return compute_truth(SentRecord(r.value, r.timestamp, late=r.phase == 2) for r in recs)


def build() -> tuple[list[GoldenRecord], Truth]:
    from lambda_testkit.golden_cases import cases, timestamps

    all_cases = cases()
    recs = [
        GoldenRecord(
            i,
            c.partition,
            None if c.key is None else c.key.encode(),
            c.value,
            to_epoch_ms(ts),
            c.phase,
            c.expect,
            c.note,
        )
        for i, (c, ts) in enumerate(zip(all_cases, timestamps(all_cases), strict=True))
    ]
    return recs, compute(recs)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m lambda_testkit.golden build", file=sys.stderr)
        return 2
    recs, expected = build()
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    with EVENTS_PATH.open("w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
    expected.save(EXPECTED_PATH)
    print(f"wrote {len(recs)} records to {EVENTS_PATH} and the truth to {EXPECTED_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
