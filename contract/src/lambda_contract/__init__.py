"""The shared contract of the Lambda revenue platform: one definition that every layer installs.

- `events`: the orders.v1 schema, validation rules, reason codes and the reference validator
- `windows`: UTC hour-window arithmetic
- `redis_layout`: the speed view's Redis keys and value codecs
- `tables`: the Delta table schemas (bronze, quarantine, gold, coverage manifest)
- `settings`: every environment variable, with defaults and clear errors
"""
