#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_content
short_description: Three-way upgrade of the prAxIs OS content trees of one installation
version_added: "1.0.0"
description:
  - Upgrades the framework content trees of C(<project>/.praxis-os) (by default C(scripts/),
    C(standards/universal/), C(workflows/), C(usage/); C(mcp_server/) is swapped whole by the server phase)
    to the source described by O(manifest), per file and three-way (SPEC 3 phase 2).
  - A local file is pristine when it equals the base manifest (what the last install or upgrade wrote),
    a version of that path in the source's git history (O(history)), or the new version.
  - Classes are C(add) new upstream file; C(update) pristine and upstream changed; C(unchanged);
    C(keep) locally modified, upstream unchanged; C(conflict) locally modified and upstream changed
    (handled by O(conflict_policy)); C(delete) pristine and removed upstream (never under C(usage/));
    C(keep_removed) removed upstream but locally modified (or under C(usage/)), kept; C(user) never
    upstream, never touched.
  - The shipped archive is unpacked into O(staging_dir) and verified against O(manifest) first
    (reused when it already verifies). Every write is atomic and checked against O(manifest) afterwards.
  - Appends the missing O(gitignore_entries) to C(<project>/.gitignore) and never rewrites it.
  - Without a base manifest (installs older than this collection), a modified file whose path never had
    another upstream version is C(keep), any other modified file is a C(conflict).
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
extends_documentation_fragment:
  - praxis.upgrade.session
options:
  session_id:
    description: Upgrade session that O(record_phase) records into (default the recorded one).
    type: str
  praxis_home:
    description: The installation directory C(<project>/.praxis-os).
    type: path
    required: true
  project_dir:
    description: The project directory (holds the C(.gitignore)).
    type: path
    required: true
  archive:
    description:
      - Path on the target of the shipped source archive (from M(praxis.upgrade.praxis_source)).
      - Required unless in check mode or nothing needs copying (an up-to-date installation).
    type: path
  staging_dir:
    description:
      - Where the archive is unpacked and verified; defaults to C(<praxis_home>/.cache/upgrade/<commit>).
      - The server phase can reuse it (it holds the whole source in installed layout).
    type: path
  commit:
    description: Commit of the source; names the default O(staging_dir).
    type: str
  manifest:
    description: Upstream manifest, installed relative path to sha256 (RV(praxis.upgrade.praxis_source#module:manifest)).
    type: dict
    required: true
  history:
    description: Installed relative path to the sha256 of older upstream versions (RV(praxis.upgrade.praxis_source#module:history)).
    type: dict
    default: {}
  base_manifest:
    description:
      - "JSON file C({\"commit\": ..., \"files\": {rel: sha256}}) written by the last install or upgrade."
      - Defaults to C(<praxis_home>/.cache/base-manifest.json); a missing file means no base.
    type: path
  trees:
    description: Installed trees (relative to O(praxis_home)) this module upgrades.
    type: list
    elements: str
    default: [scripts, standards/universal, workflows, usage]
  conflict_policy:
    description:
      - C(keep_local) keeps the local file and writes the new version beside it as C(<name>.upstream).
      - C(take_upstream) replaces it (the local copy stays in the backup).
      - C(fail) fails the task before anything is written.
    type: str
    choices: [keep_local, take_upstream, fail]
    default: keep_local
  gitignore_entries:
    description: Lines that must be in C(<project>/.gitignore); missing ones are appended.
    type: list
    elements: str
    default:
      - .praxis-os/venv/
      - .praxis-os/.cache/
      - .praxis-os/.backups/
      - .praxis-os/.upgrade-lock
      - .praxis-os/.mcp_server_state.json
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Computes the full plan with counts and lists; nothing is unpacked or written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Lists per path what is added, updated, kept beside, deleted, and the C(.gitignore) lines appended.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Upgrade the content trees, keeping local modifications
  praxis.upgrade.praxis_content:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    project_dir: "{{ praxis_project_dir }}"
    archive: "{{ praxis_project_dir }}/.praxis-os/.cache/upgrade/{{ praxis_src.commit }}.tar.gz"
    commit: "{{ praxis_src.commit }}"
    manifest: "{{ praxis_src.manifest }}"
    history: "{{ praxis_src.history }}"
    conflict_policy: "{{ praxis_conflict_policy }}"
  register: praxis_content_result

- name: Refuse to upgrade over local modifications that changed upstream too
  praxis.upgrade.praxis_content:
    praxis_home: /srv/app/.praxis-os
    project_dir: /srv/app
    archive: /srv/app/.praxis-os/.cache/upgrade/3f9a1c0e.tar.gz
    commit: 3f9a1c0e
    manifest: "{{ praxis_src.manifest }}"
    conflict_policy: fail
"""

RETURN = r"""
session:
  description: The upgrade session after recording O(record_phase) (see M(praxis.upgrade.praxis_state)).
  returned: when O(record_phase) is set and not in check mode
  type: dict
counts:
  description: Number of paths per class.
  returned: always
  type: dict
  sample: {add: 3, update: 12, unchanged: 300, keep: 1, conflict: 1, delete: 2, user: 4, keep_removed: 0}
added:
  description: Paths added (at most 200, see RV(truncated)).
  returned: always
  type: list
  elements: str
updated:
  description: Pristine paths updated.
  returned: always
  type: list
  elements: str
kept:
  description: Locally modified paths kept because upstream did not change them.
  returned: always
  type: list
  elements: str
conflicts:
  description: Locally modified paths that also changed upstream (see RV(conflict_policy)).
  returned: always
  type: list
  elements: str
deleted:
  description: Pristine paths deleted because upstream removed them.
  returned: always
  type: list
  elements: str
kept_removed:
  description: Paths removed upstream but kept (locally modified, or in a merge-only tree).
  returned: always
  type: list
  elements: str
user_files:
  description: Files in the trees that were never upstream; never touched.
  returned: always
  type: list
  elements: str
upstream_written:
  description: C(<name>.upstream) files written beside kept conflicts (O(conflict_policy=keep_local)).
  returned: always
  type: list
  elements: str
truncated:
  description: Whether any of the path lists was cut at 200 entries (RV(counts) has the full numbers).
  returned: always
  type: bool
conflict_policy:
  description: Policy applied to conflicts.
  returned: always
  type: str
gitignore_added:
  description: Lines appended to C(<project>/.gitignore) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
staging_dir:
  description: Where the source was unpacked and verified; null in check mode and when nothing needed copying.
  returned: always
  type: str
extracted:
  description: Whether the archive was unpacked by this run (false when the staging dir already verified).
  returned: always
  type: bool
verified:
  description: Whether every written path was checked against the source manifest afterwards (false in check mode).
  returned: always
  type: bool
changed:
  description: Whether content or the C(.gitignore) changed (would change, in check mode).
  returned: always
  type: bool
diff:
  description: Before/after listings of the paths that change.
  returned: when diff mode is on
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.session import record_for
from ansible_collections.praxis.upgrade.plugins.module_utils.state import PHASES
from ansible_collections.praxis.upgrade.plugins.module_utils import content
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import UnsafePathError, check_relpath, read_json
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import validate_manifest
from ansible_collections.praxis.upgrade.plugins.module_utils.source import extract

try:
    from ansible_collections.praxis.upgrade.plugins.module_utils.faults import fault_point
except ImportError:  # pragma: no cover - faults.py ships with the collection
    def fault_point(name):
        return None

LIMIT = 200
LISTS = (("added", "add"), ("updated", "update"), ("kept", "keep"), ("conflicts", "conflict"),
         ("deleted", "delete"), ("kept_removed", "keep_removed"), ("user_files", "user"))


def load_base(path):
    """The base manifest's files ({} when there is none); ValueError with a next step when corrupt."""
    if not os.path.exists(path):
        return {}
    hint = ("move it aside to upgrade without a base (modified files then count as conflicts "
            "unless upstream never changed them)")
    document = read_json(path, "base manifest")
    if not isinstance(document, dict):
        raise ValueError("base manifest %s is not a JSON object; %s" % (path, hint))
    try:
        return validate_manifest(document.get("files"), path)
    except ValueError as exc:
        raise ValueError("base manifest: %s; %s" % (exc, hint))


def check_history(history):
    for rel, digests in history.items():
        try:
            check_relpath(rel)
        except UnsafePathError as exc:
            raise ValueError("history: %s; re-run praxis_source to get a fresh history" % exc)
        if not isinstance(digests, list) or not all(isinstance(d, str) and len(d) == 64 for d in digests):
            raise ValueError("history entry %r is not a list of sha256 digests; re-run praxis_source" % rel)
    return history


def shape(result, plan):
    truncated = False
    for key, name in LISTS:
        paths = plan[name]
        truncated = truncated or len(paths) > LIMIT
        result[key] = paths[:LIMIT]
    upstream_written = result.get("upstream_written", [])
    result["upstream_written"] = upstream_written[:LIMIT]
    result["truncated"] = truncated or len(upstream_written) > LIMIT
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            praxis_home=dict(type="path", required=True),
            project_dir=dict(type="path", required=True),
            archive=dict(type="path"),
            staging_dir=dict(type="path"),
            commit=dict(type="str"),
            manifest=dict(type="dict", required=True),
            history=dict(type="dict", default={}),
            base_manifest=dict(type="path"),
            trees=dict(type="list", elements="str", default=list(content.TREES)),
            conflict_policy=dict(type="str", choices=list(content.POLICIES), default="keep_local"),
            gitignore_entries=dict(type="list", elements="str", default=list(content.GITIGNORE_ENTRIES)),
            record_phase=dict(type="str", choices=list(PHASES)),
            session_id=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    home, project = p["praxis_home"], p["project_dir"]
    if not os.path.isdir(project):
        module.fail_json(msg="project directory %s does not exist; check praxis_project_dir for this host" % project)
    if not os.path.isdir(home):
        module.fail_json(msg="%s does not exist, so %s is not a prAxIs OS installation; install prAxIs OS "
                             "there first or fix praxis_project_dir" % (home, project))
    trees = tuple(tree.strip("/") for tree in p["trees"])
    try:
        upstream_all = validate_manifest(p["manifest"], "option manifest")
        upstream = content.only_trees(upstream_all, trees)
        history = content.only_trees(check_history(p["history"]), trees)
        base_path = p["base_manifest"] or os.path.join(home, ".cache", "base-manifest.json")
        base = content.only_trees(load_base(base_path), trees)
        local = content.local_manifest(home, trees)
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    plan = content.classify(local, base, upstream, history)
    policy = p["conflict_policy"]
    staging = None
    extracted = False
    try:
        if policy == "fail" and plan["conflict"]:
            raise content.ConflictError(plan["conflict"])
        gitignore_added = content.append_gitignore(project, p["gitignore_entries"], check=True)
        if module.check_mode:
            applied = content.apply(plan, home, None, policy, check=True, trees=trees)
        else:
            if content.pending_writes(plan, home, policy):
                staging, extracted = stage(module, home, upstream_all)
            applied = content.apply(plan, home, staging, policy, fault=lambda: fault_point("content.midway"),
                                    trees=trees)
            gitignore_added = content.append_gitignore(project, p["gitignore_entries"])
    except content.ConflictError as exc:
        module.fail_json(msg="content of %s: %s" % (home, exc), conflicts=exc.paths[:LIMIT],
                         counts=plan.counts())
    except (content.ContentError, ValueError, OSError) as exc:
        module.fail_json(msg="content of %s: %s" % (home, exc), counts=plan.counts())

    changed = bool(applied["written"] or applied["upstream_written"] or applied["deleted"] or gitignore_added)
    result = dict(changed=changed, counts=plan.counts(), conflict_policy=policy,
                  upstream_written=applied["upstream_written"], gitignore_added=gitignore_added,
                  staging_dir=staging, extracted=extracted, verified=applied["verified"])
    shape(result, plan)
    if module._diff:
        listing = content.diff_listing(plan, policy, gitignore_added)
        result["diff"] = dict(before_header="%s (installed)" % home,
                              after_header="%s (source %s)" % (home, p["commit"] or "new"), **listing)
    recorded = record_for(module, dict(counts=result["counts"], conflicts=result["conflicts"],
                                       gitignore_added=gitignore_added))
    if recorded:
        result["session"] = recorded
    module.exit_json(**result)


def stage(module, home, upstream_all):
    """Unpack and verify the archive; return (staging dir, whether it was unpacked now)."""
    p = module.params
    staging = p["staging_dir"]
    if not staging:
        if not p["commit"]:
            module.fail_json(msg="neither staging_dir nor commit is set; pass commit (praxis_source's commit)")
        staging = os.path.join(home, ".cache", "upgrade", p["commit"])
    if not p["archive"]:
        module.fail_json(msg="archive is not set and content must change in %s; pass the path of the shipped "
                             "source archive" % home)
    outcome = extract(p["archive"], staging, upstream_all)
    return staging, outcome["extracted"]


if __name__ == "__main__":
    main()
