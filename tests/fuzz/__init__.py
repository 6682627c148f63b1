"""Property-based fuzzing with hypothesis: OCPP input paths and hardware drivers.

Default suite: `pytest tests/fuzz` (derandomized). Long run: `python -m fuzz.run --minutes 10`.
"""
