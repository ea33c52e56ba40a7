"""Cases of the fault matrix known to fail on the current main (product bugs of issue 8, being fixed).

With `--faults-allow-known` (what `make faults` passes) a listed case that fails is reported as
"FAIL (known)" in the matrix and skipped with its full verdict instead of failing the run; a listed case
that passes is reported as such in the matrix (and warned about), so the list is flipped as fixes land
(timing cases can pass by luck, so that is not a failure). Without the option every case counts.
Ids are the test part of the pytest node id: `test_name[param]`.
Empty since the fixes of issue 8 landed (2026-11-30): every case must pass.
"""
from __future__ import annotations

KNOWN_FAILING: frozenset[str] = frozenset()
