"""Cases of the fault matrix known to fail on the current main (product bugs of issue 8, being fixed).

With `--faults-allow-known` (what `make faults` passes) a listed case that fails is reported as
"FAIL (known)" in the matrix and skipped with its full verdict, instead of failing the run; a listed case
that passes FAILS the run, so the list is flipped as fixes land. Without the option every case counts.
Ids are pytest node ids below tests/faults/ (file::test[param]).
"""
from __future__ import annotations

KNOWN_FAILING: frozenset[str] = frozenset()
