#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_source
short_description: Validate a prAxIs OS source checkout and pack it into one archive
version_added: "1.0.0"
description:
  - "Runs on the controller (use C(delegate_to: localhost) and C(run_once))."
  - Refuses a missing, relative or nonexistent path, a directory that is not the root of a git work
    tree, a work tree with uncommitted or untracked changes, a checkout without the prAxIs OS layout
    (C(mcp_server/) with C(__main__.py) or C(__init__.py), C(mcp_server/requirements.txt),
    C(universal/standards/)), and a symlink that points outside its tree. Each error names the next step.
  - The version is the git commit (plus C(git describe --tags --always)).
  - Returns the upstream manifest in installed layout (C(mcp_server/), C(scripts/), C(standards/universal/),
    C(workflows/), C(usage/)) over the files git tracks, and for every installed path the sha256 of every
    other version it had in the history of HEAD (used on targets to recognise unmodified files).
  - Packs one deterministic C(praxis-source-<commit>.tar.gz) in O(archive_dir) (installed layout plus
    C(praxis-source.json)); the same commit gives the same bytes, and an existing archive whose recorded
    checksum still matches is reused, so re-runs ship nothing new.
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
options:
  path:
    description: Absolute controller path of the prAxIs OS git checkout (C(praxis_source)).
    type: path
    required: true
  archive_dir:
    description: Absolute controller cache directory for the archive; created when missing.
    type: path
    required: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Inspects and packs in check mode too, so that C(--check) can report what would be shipped.
        The only write is the archive in the controller cache O(archive_dir); no target is touched.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Needs the C(git) command on the controller.
"""

EXAMPLES = r"""
- name: Validate and pack the source once for the whole fleet
  praxis.upgrade.praxis_source:
    path: "{{ praxis_source }}"
    archive_dir: "{{ playbook_dir }}/../.cache/praxis-source"
  delegate_to: localhost
  run_once: true
  register: praxis_src

- name: Ship the archive to a target
  ansible.builtin.copy:
    src: "{{ praxis_src.archive }}"
    dest: "{{ praxis_project_dir }}/.praxis-os/.cache/upgrade/{{ praxis_src.commit }}.tar.gz"
    mode: "0644"
"""

RETURN = r"""
controller:
  description: Who drives the upgrade, as C(user@host) of the controller; recorded in locks and sessions.
  returned: always
  type: str
  sample: ops@bastion
path:
  description: Resolved absolute path of the checkout.
  returned: always
  type: str
commit:
  description: Full sha of HEAD (the version).
  returned: always
  type: str
  sample: 3f9a1c0e5b2d4a6f8c7e9d1b0a2c4e6f8a0b1c2d
describe:
  description: C(git describe --tags --always) of HEAD.
  returned: always
  type: str
  sample: v2.0.0
committed_at:
  description: Commit time of HEAD (unix seconds); used as the mtime of every archive member.
  returned: always
  type: int
manifest:
  description: Installed relative path to sha256 of every tracked file of the mapped trees.
  returned: always
  type: dict
history:
  description:
    - Installed relative path to the sorted sha256 of every other version the path had in the history
      of HEAD (the current version excluded; paths without other versions omitted), derived from RV(installs)
      (the same commits, at most 2000).
  returned: always
  type: dict
installs:
  description:
    - The install of every commit of HEAD's history (newest first, at most 2000), for identifying the installed
      commit of an installation without a base manifest; C(paths) and C(digests) tables, C(trees) (lists of
      [path index, digest index]), C(commits) rows C([sha, tree index, cursorrules sha256, mcp key, mcp entry digest]),
      C(mcp_keys), C(shallow), C(commit_count), C(truncated), C(source).
  returned: always
  type: dict
workflows:
  description:
    - The entries of C(workflows/) (C(workflows/<name>)) some commit of HEAD's history installs, that is what an
      upgrade owns there. The operator's own workflows beside them are never walked, copied or restored.
  returned: always
  type: list
  elements: str
  sample: ["workflows/spec_creation_v1", "workflows/spec_execution_v1"]
shallow:
  description: Whether the source is a shallow clone (its history cannot prove pristine files of older installs).
  returned: always
  type: bool
ide:
  description:
    - The IDE config HEAD's installer writes. C(cursorrules) (C(text), C(sha256)) from C(installation/.cursorrules);
      C(mcp) (C(key), C(value), C(entry) digest) from the installation docs' "Should look like this" mcp.json block;
      C(mcp_keys) every server key the history used; C(history) older digests of both.
  returned: always
  type: dict
requirements_sha256:
  description: sha256 of C(mcp_server/requirements.txt).
  returned: always
  type: str
requirements_key:
  description: Requirement-set key of C(mcp_server/requirements.txt) (comments, blank lines and order do not count).
  returned: always
  type: str
bytes:
  description: Total size in bytes of the files in RV(manifest).
  returned: always
  type: int
file_count:
  description: Number of files in RV(manifest).
  returned: always
  type: int
archive:
  description: Controller path of the packed archive.
  returned: always
  type: str
archive_sha256:
  description: sha256 of the archive.
  returned: always
  type: str
archive_bytes:
  description: Size of the archive in bytes.
  returned: always
  type: int
changed:
  description: Whether the archive was newly written (false when an identical one was reused).
  returned: always
  type: bool
"""

import getpass
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.source import GitError, inspect, pack


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            archive_dir=dict(type="path", required=True),
        ),
        supports_check_mode=True,
    )
    # type=path expands ~ and variables but keeps a relative path relative; inspect refuses it.
    try:
        info = inspect(module.params["path"])
        packed = pack(info["path"], info, module.params["archive_dir"])
    except (ValueError, GitError, OSError) as exc:
        module.fail_json(msg="praxis source: %s" % exc)
    result = dict(info, controller="%s@%s" % (getpass.getuser(), socket.gethostname()))
    written = packed.pop("written")
    result.update(packed)
    module.exit_json(changed=written, **result)


if __name__ == "__main__":
    main()
