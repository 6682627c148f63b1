"""Long fuzzing runs of the tests/fuzz properties: `python -m fuzz.run --minutes 10`."""
