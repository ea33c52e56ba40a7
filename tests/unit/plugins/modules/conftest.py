"""Run a module's `main()` in-process (ansible-core 2.16 - 2.21: see module_args.py).

Use the `run_module` fixture:

    def test_something(run_module):
        result, failed = run_module(praxis_state, {"praxis_home": ..., "state": "started", ...})

`module` is the imported module object (anything with `main()`); `args` are its options, plus the
internal ones when wanted (`_ansible_check_mode`, `_ansible_diff`). The result is the JSON the module
printed; `failed` is true when it called `fail_json`.
"""
from __future__ import annotations

import contextlib
import io
import json
from typing import Any, Callable, Dict, Tuple

import pytest
from tests.unit.plugins.modules.module_args import patch_module_args

ModuleRunner = Callable[..., Tuple[Dict[str, Any], bool]]


def run_module(module: Any, args: Dict[str, Any], check_mode: bool = False, diff: bool = False) -> Tuple[Dict[str, Any], bool]:
    """Call `module.main()` with `args`; return (printed result, failed)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit) as exited:
            module.main()
    text = out.getvalue()
    try:
        result = json.loads(text)
    except ValueError as exc:  # pragma: no cover - only when a module prints garbage
        raise AssertionError("module printed no JSON result (exit %s): %r" % (exited.value.code, text)) from exc
    failed = bool(result.get("failed")) or exited.value.code not in (0, None)
    return result, failed


@pytest.fixture(name="run_module")
def run_module_fixture() -> ModuleRunner:
    """The `run_module(module, args, check_mode=False, diff=False) -> (result, failed)` helper."""
    return run_module
