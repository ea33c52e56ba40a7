#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_verify_manifest
short_description: Verify a directory tree against a SHA-256 manifest or another tree
version_added: "1.0.0"
description:
  - Hashes every file below O(path) and compares it with a C(MANIFEST.json)-style manifest
    (a JSON object whose C(files) maps relative paths to SHA-256 hex digests) or with another tree,
    reporting files missing, changed and extra.
  - Symlinks pointing outside a tree and manifest entries that are absolute or contain C(..) are refused.
  - Read-only; runs the same in check mode.
author:
  - praxis.upgrade contributors (@praxis-upgrade)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  path:
    description: Root of the tree to verify.
    type: path
    required: true
  manifest:
    description: Manifest file to verify against. Mutually exclusive with O(against).
    type: path
  against:
    description: Reference tree to verify against. Mutually exclusive with O(manifest).
    type: path
  manifest_prefix:
    description:
      - Only use manifest entries under this prefix, with the prefix stripped (for example C(files/)
        to check the C(files/) tree of a backup against its C(MANIFEST.json)).
    type: str
    default: ""
  fail_on_mismatch:
    description: Fail the task when anything is missing, changed or extra.
    type: bool
    default: true
  ignore:
    description: File and directory name patterns (fnmatch) left out on both sides.
    type: list
    elements: str
    default: [__pycache__, "*.pyc", .DS_Store, .pytest_cache, .mypy_cache]
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Verify the files of a backup against its manifest
  praxis.upgrade.praxis_verify_manifest:
    path: "{{ backup.path }}/files"
    manifest: "{{ backup.path }}/MANIFEST.json"
    manifest_prefix: files/

- name: Check the installed server equals the staged one, without failing
  praxis.upgrade.praxis_verify_manifest:
    path: "{{ praxis_project_dir }}/.praxis-os/mcp_server"
    against: "{{ praxis_project_dir }}/.praxis-os/.cache/upgrade/mcp_server.new"
    fail_on_mismatch: false
  register: server_tree
"""

RETURN = r"""
ok:
  description: Nothing missing, changed or extra.
  returned: always
  type: bool
missing:
  description: Relative paths expected but absent from O(path).
  returned: always
  type: list
  elements: str
changed_paths:
  description:
    - Relative paths whose SHA-256 differs from the expected one.
    - Not named C(changed), which Ansible reserves for "the task changed something" (always false here).
  returned: always
  type: list
  elements: str
extra:
  description: Relative paths present in O(path) but not expected.
  returned: always
  type: list
  elements: str
counts:
  description: Number of C(missing), C(changed) and C(extra) paths.
  returned: always
  type: dict
  sample: {"missing": 0, "changed": 1, "extra": 0}
checked:
  description: Number of distinct files compared (expected and present together).
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import (
    IGNORE,
    build_manifest,
    compare,
    ignored,
    load_manifest,
)

SHOWN = 10  # paths named per class in a failure message


def expected_from_manifest(path, prefix, ignore):
    files = load_manifest(path)["files"]
    expected = {}
    for rel, digest in files.items():
        if not rel.startswith(prefix) or rel == prefix:
            continue
        rel = rel[len(prefix):]
        if not any(ignored(part, ignore) for part in rel.split("/")):
            expected[rel] = digest
    return expected


def summary(diff):
    parts = []
    for name in ("missing", "changed", "extra"):
        paths = getattr(diff, name)
        if paths:
            more = " and %d more" % (len(paths) - SHOWN) if len(paths) > SHOWN else ""
            parts.append("%d %s (%s%s)" % (len(paths), name, ", ".join(paths[:SHOWN]), more))
    return "; ".join(parts)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            manifest=dict(type="path"),
            against=dict(type="path"),
            manifest_prefix=dict(type="str", default=""),
            fail_on_mismatch=dict(type="bool", default=True),
            ignore=dict(type="list", elements="str", default=list(IGNORE)),
        ),
        mutually_exclusive=[("manifest", "against")],
        required_one_of=[("manifest", "against")],
        supports_check_mode=True,
    )
    p = module.params
    ignore = tuple(p["ignore"])
    if not os.path.isdir(p["path"]):
        module.fail_json(msg="tree %s does not exist or is not a directory; check the path option" % p["path"])
    try:
        if p["manifest"]:
            reference = p["manifest"]
            expected = expected_from_manifest(p["manifest"], p["manifest_prefix"], ignore)
        else:
            reference = p["against"]
            if not os.path.isdir(p["against"]):
                module.fail_json(msg="reference tree %s does not exist or is not a directory; check the against "
                                     "option" % p["against"])
            expected = build_manifest(p["against"], ignore)
        actual = build_manifest(p["path"], ignore)
    except (ValueError, OSError) as exc:
        module.fail_json(msg="cannot verify %s: %s" % (p["path"], exc))

    diff = compare(expected, actual)
    result = diff.as_dict()
    result["changed_paths"] = result.pop("changed")
    result.update(changed=False, checked=len(set(expected) | set(actual)))
    if not diff.ok and p["fail_on_mismatch"]:
        module.fail_json(msg="tree %s does not match %s: %s; inspect these files (the reference may be the one "
                             "that is wrong) before going on" % (p["path"], reference, summary(diff)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
