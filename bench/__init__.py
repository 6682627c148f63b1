"""Benchmarks for evsed's speed and memory targets (`python -m bench.run`).

Targets are measured here, never by timed assertions in tests: machines are
shared and noisy, so a benchmark reports medians and tails for a person to
judge, while the test suite only checks that each benchmark still runs.
"""
