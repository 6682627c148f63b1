"""Hypothesis settings shared by the fuzz tests.

Two registered profiles, chosen by the environment variable EVSED_FUZZ_PROFILE:

- "evsed-fuzz" (the default, used by the ordinary test suite): derandomized, so
  every run draws the same examples and a red build is reproducible; example
  counts keep the whole tests/fuzz directory around a minute on 2 cores.
- "evsed-fuzz-long" (EVSED_FUZZ_PROFILE=long, set by `python -m fuzz.run`): a
  random seed (pytest's --hypothesis-seed, printed by the runner) and every
  test's example count multiplied by EVSED_FUZZ_SCALE (default 25).

No example database is written in either profile: the repository stays clean,
and a failure is reproduced from its seed or the printed @reproduce_failure blob.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "EVSED_FUZZ_PROFILE"
SCALE_ENV = "EVSED_FUZZ_SCALE"

_COMMON = settings(
    deadline=None,  # the daemon and the ptys have real latencies; deadlines would flake
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile("evsed-fuzz", _COMMON, derandomize=True)
settings.register_profile("evsed-fuzz-long", _COMMON, derandomize=False)

LONG = os.environ.get(PROFILE_ENV, "") == "long"
SCALE = max(1, int(os.environ.get(SCALE_ENV, "25"))) if LONG else 1
PROFILE = settings.get_profile("evsed-fuzz-long" if LONG else "evsed-fuzz")


def fuzz_settings(examples: int) -> settings:
    """The active profile with `examples` examples (scaled up in the long run)."""
    return settings(PROFILE, max_examples=examples * SCALE)
