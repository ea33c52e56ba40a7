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
  - The content phase runs while the old server still runs and touches nothing live. It unpacks the
    shipped archive into O(staging_dir) and verifies it against O(manifest) (reused when it already
    verifies), checks every file to write against its sha256 there, stages the new IDE config, and
    writes the plan C(<staging_dir>/content-plan.json) (recorded in the session evidence).
  - M(praxis.upgrade.praxis_server) (C(action=upgrade)) carries the plan out between the old server's
    stop and the swap, with every write an atomic rename of a copy of a staged file, verified; planned
    deletes; the missing O(gitignore_entries) appended to C(<project>/.gitignore) (never rewritten);
    the IDE config. Idempotent, so a re-run after a crash completes it; a target changed since the
    plan is refused.
  - The base is the base manifest; without one (installs made by upstream's docs), the install of
    O(installed_commit) from O(installs) (the commit preflight identified in the source's history).
    With neither, a modified file whose path never had another upstream version is C(keep), any other
    modified file is a C(conflict).
  - IDE config (C(.cursorrules), the prAxIs OS entry of C(.cursor/mcp.json)) follows the new version's
    installer three-way (O(ide)); the entry moves to the new key, other entries are kept; a missing
    file or entry is never created, except by a fresh install (O(install)).
  - O(install=true) is the content step of a fresh install (C(playbooks/install.yml)), with an empty base
    - the IDE config is written as the source's installer writes it (an absent C(.cursorrules) created, the
    server entry added to C(.cursor/mcp.json), every other entry kept), and in check mode the installation
    directory may not exist yet (the dry run of an install lists every file it would add).
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
extends_documentation_fragment:
  - praxis.upgrade.session
options:
  installs:
    description:
      - Installs of the source's history (RV(praxis.upgrade.praxis_source#module:installs)); gives the base when
        there is no base manifest.
    type: dict
    default: {}
  install:
    description:
      - A fresh install (C(playbooks/install.yml)) - create the IDE config the installer writes; in check mode
        O(praxis_home) may be absent.
    type: bool
    default: false
  installed_commit:
    description: The installed commit preflight found (C(VERSION.txt) or matched in O(installs)).
    type: str
  ide:
    description: The IDE config the new version's installer writes (RV(praxis.upgrade.praxis_source#module:ide)).
    type: dict
    default: {}
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
  src:
    description:
      - Path on the controller of the source archive (RV(praxis.upgrade.praxis_source#module:archive)). The action
        plugin of the same name ships it in this task and the module installs it at O(archive) (atomically, mode
        C(0600)) before it plans, so no separate copy task is needed. Not shipped in check mode.
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
    description:
      - Upstream manifest, installed relative path to sha256 (RV(praxis.upgrade.praxis_source#module:manifest)).
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
- name: Plan and stage the content upgrade, keeping local modifications (nothing live changes)
  praxis.upgrade.praxis_content:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    project_dir: "{{ praxis_project_dir }}"
    src: "{{ praxis_src.archive }}"
    archive: "{{ praxis_project_dir }}/.praxis-os/.cache/praxis-source-{{ praxis_src.commit }}.tar.gz"
    commit: "{{ praxis_src.commit }}"
    manifest: "{{ praxis_src.manifest }}"
    history: "{{ praxis_src.history }}"
    installs: "{{ praxis_src.installs }}"
    installed_commit: "{{ praxis_preflight.installed_commit }}"
    ide: "{{ praxis_src.ide }}"
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
plan_path:
  description: The plan file written (applied by M(praxis.upgrade.praxis_server)); null in check mode.
  returned: always
  type: str
base:
  description: Where the base of the three-way comparison came from (null when there is none).
  returned: always
  type: str
ide:
  description: Per IDE config file, its class (C(unchanged), C(update), C(keep), C(conflict), C(absent), C(invalid)) and a note.
  returned: always
  type: list
  elements: dict
ide_written:
  description: IDE config files the plan writes, relative to the project.
  returned: always
  type: list
  elements: str
ide_conflicts:
  description: IDE config files modified locally and changed by the new installer.
  returned: always
  type: list
  elements: str
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
  description:
    - Files in the trees that were never upstream; never touched. The operator's own workflows (entries of
      C(workflows/) that no version of the source ships and the base does not list) are not even read.
  returned: always
  type: list
  elements: str
upstream_written:
  description: C(<name>.upstream) files planned beside kept conflicts (O(conflict_policy=keep_local)).
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
  description: Where the source was unpacked and verified and the plan written; null in check mode.
  returned: always
  type: str
extracted:
  description: Whether the archive was unpacked by this run (false when the staging dir already verified).
  returned: always
  type: bool
verified:
  description: Whether every staged path was checked against its sha256 (false in check mode).
  returned: always
  type: bool
changed:
  description: Whether the plan changes content, the C(.gitignore) or IDE config.
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
from ansible_collections.praxis.upgrade.plugins.module_utils import content, ideconfig, installs
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError, check_relpath, copy_file_atomic, read_json, sha256_file)
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import (
    BASE_MANIFEST, narrow_trees, owned_workflows, validate_manifest)
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


def resolve_base(module, home, trees):
    """(base manifest restricted to `trees`, installer IDE digests of the installed commit, where from)."""
    p = module.params
    base_path = p["base_manifest"] or os.path.join(home, BASE_MANIFEST)
    base = load_base(base_path)
    commit = p["installed_commit"]
    ide_base = installs.ide_of(p["installs"], commit) if commit else {}
    if base:
        return content.only_trees(base, trees), ide_base, "base manifest"
    from_history = installs.tree_of(p["installs"], commit) if commit else None
    if from_history is not None:  # a docs-made install: preflight identified its commit in the history
        return content.only_trees(from_history, trees), ide_base, "install of %s (source history)" % commit[:12]
    return {}, ide_base, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            praxis_home=dict(type="path", required=True),
            project_dir=dict(type="path", required=True),
            archive=dict(type="path"),
            src=dict(type="path"),
            staging_dir=dict(type="path"),
            commit=dict(type="str"),
            manifest=dict(type="dict", required=True),
            history=dict(type="dict", default={}),
            installs=dict(type="dict", default={}),
            installed_commit=dict(type="str"),
            install=dict(type="bool", default=False),
            ide=dict(type="dict", default={}),
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
    if not os.path.isdir(home) and not (p["install"] and module.check_mode):
        module.fail_json(msg="%s does not exist, so %s is not a prAxIs OS installation; install prAxIs OS "
                             "there first or fix praxis_project_dir" % (home, project))
    if p["src"] and not module.check_mode:
        install_archive(module, p["src"], p["archive"])
    trees = tuple(tree.strip("/") for tree in p["trees"])
    try:
        upstream_all = validate_manifest(p["manifest"], "option manifest")
        upstream = content.only_trees(upstream_all, trees)
        history = content.only_trees(check_history(p["history"]), trees)
        base, ide_base, base_from = resolve_base(module, home, trees)
        # a local path outside what any version ships or the base wrote is the user's either way: the
        # user's own workflows are not even hashed
        owned = owned_workflows(list(upstream_all) + list(history) + list(base) + list(p["installs"].get("paths") or ()))
        local = content.local_manifest(home, narrow_trees(trees, owned))
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    plan = content.classify(local, base, upstream, history)
    policy = p["conflict_policy"]
    ide_plan = ideconfig.plan(project, p["ide"], ide_base, policy, create=p["install"])
    staging = None
    extracted = False
    document = None
    try:
        if policy == "fail" and (plan["conflict"] or ide_plan["conflicts"]):
            raise content.ConflictError(plan["conflict"] + ide_plan["conflicts"])
        gitignore_added = content.append_gitignore(project, p["gitignore_entries"], check=True)
        planned = content.preview(plan, home, policy)
        if not module.check_mode:
            if module.params["archive"] or content.pending_writes(plan, home, policy):
                staging, extracted = stage(module, home, upstream_all)
            else:  # nothing to copy and no archive: only the plan (deletes, .gitignore, IDE config)
                staging = module.params["staging_dir"] or content.staging_path(home, p["commit"] or "local")
                os.makedirs(staging, exist_ok=True)
            document = content.stage_plan(plan, home, project, staging, policy, ide_plan, p["gitignore_entries"],
                                          extra={"commit": p["commit"], "base": base_from})
    except content.ConflictError as exc:
        module.fail_json(msg="content of %s: %s" % (home, exc), conflicts=exc.paths[:LIMIT],
                         counts=plan.counts())
    except (content.ContentError, ValueError, OSError) as exc:
        module.fail_json(msg="content of %s: %s" % (home, exc), counts=plan.counts())

    ide_writes = sorted(ide_plan["writes"])
    changed = bool(planned["written"] or planned["upstream_written"] or planned["deleted"] or gitignore_added
                   or ide_writes)
    path = os.path.join(staging, content.PLAN_NAME) if staging else None
    result = dict(changed=changed, counts=plan.counts(), conflict_policy=policy,
                  upstream_written=planned["upstream_written"], gitignore_added=gitignore_added,
                  staging_dir=staging, extracted=extracted, verified=document is not None, plan_path=path,
                  base=base_from, ide=ide_plan["items"], ide_written=ide_writes, ide_conflicts=ide_plan["conflicts"])
    shape(result, plan)
    if module._diff:
        listing = content.diff_listing(plan, policy, gitignore_added)
        for rel in ide_writes:
            listing["after"] += "../%s  (IDE config: %s)\n" % (rel, "upstream beside" if rel.endswith(
                content.UPSTREAM_SUFFIX) else "rewritten per the new installer")
        result["diff"] = dict(before_header="%s (installed)" % home,
                              after_header="%s (source %s)" % (home, p["commit"] or "new"), **listing)
    evidence = dict(counts=result["counts"], conflicts=result["conflicts"] + ide_plan["conflicts"],
                    gitignore_added=gitignore_added, plan_path=path, base=base_from,
                    plan_sha256=sha256_file(path) if path else None,
                    writes=len(document["writes"]) if document else 0,
                    deletes=len(document["deletes"]) if document else 0,
                    ide={item["path"]: item["class"] for item in ide_plan["items"]})
    recorded = record_for(module, evidence)
    if recorded:
        result["session"] = recorded
        fault_point("content.planned")  # test seam: the phase is recorded, nothing live has changed
    module.exit_json(**result)


def install_archive(module, src, archive):
    """The archive the action plugin shipped (src, in the connection's temporary directory) at `archive`."""
    if not archive:
        module.fail_json(msg=content.SRC_WITHOUT_ARCHIVE)
    try:
        os.makedirs(os.path.dirname(archive), exist_ok=True)
        copy_file_atomic(src, archive, 0o600)
    except OSError as exc:
        module.fail_json(msg="cannot install the shipped source archive at %s: %s. Next: check free space and "
                             "permissions there, then re-run" % (archive, exc.strerror or exc))


def stage(module, home, upstream_all):
    """Unpack and verify the archive; return (staging dir, whether it was unpacked now)."""
    p = module.params
    staging = p["staging_dir"]
    if not staging:
        if not p["commit"]:
            module.fail_json(msg="neither staging_dir nor commit is set; pass commit (praxis_source's commit)")
        staging = content.staging_path(home, p["commit"])
    if not p["archive"]:
        module.fail_json(msg="archive is not set and content must change in %s; pass the path of the shipped "
                             "source archive" % home)
    outcome = extract(p["archive"], staging, upstream_all)
    return staging, outcome["extracted"]


if __name__ == "__main__":
    main()
