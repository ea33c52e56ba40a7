"""`patch_module_args(args)`: run a module's `main()` in-process with `args`, on every ansible-core the
collection supports (meta/runtime.yml). ansible-core 2.19 added `ansible.module_utils.testing`; before it
(2.16 - 2.18) a module read its arguments from `ansible.module_utils.basic._ANSIBLE_ARGS`."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Dict, Iterator, Optional

__all__ = ["patch_module_args"]

try:
    from ansible.module_utils.testing import patch_module_args  # pylint: disable=unused-import  # noqa: F401 (>= 2.19)
except ImportError:  # ansible-core < 2.19
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager  # type: ignore[no-redef]
    def patch_module_args(args: Optional[Dict[str, Any]] = None) -> Iterator[None]:
        """The arguments a module's `AnsibleModule` sees while the context is active."""
        args = dict(args or {})
        args.setdefault("_ansible_remote_tmp", "/tmp")
        args.setdefault("_ansible_keep_remote_files", False)
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved
