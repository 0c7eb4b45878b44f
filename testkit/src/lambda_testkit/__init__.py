"""What every layer's tests and benchmarks share: the golden set, ground truth, hostile payloads,
and the sandbox and process helpers of the integration tests."""
