"""Benchmark harness: spike-inference methods, metrics, suites and leaderboards."""
