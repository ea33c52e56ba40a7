#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_server
short_description: Swap, install dependencies for, and stop/start/restart a prAxIs OS MCP server
version_added: "1.0.0"
description:
  - The server phase of a prAxIs OS upgrade and the server steps of a rollback, on the target.
  - O(action=swap) stages the new C(mcp_server/) beside the live one (every file verified against the
    manifest), then swaps it in with two renames journalled in the session facts file; an interrupted
    swap is finished or undone from that journal first (O(action=recover) does only that, and
    O(action=stop) does it before stopping, as a rollback needs).
  - O(action=deps) runs C(pip install -r mcp_server/requirements.txt) in the installation's venv unless
    the requirements file is unchanged and every requirement is already installed.
  - O(action=upgrade) is the whole server phase in one task, ordered for the least downtime - the new
    requirements (from O(source_dir)) are installed while the old server still runs; then the old server is
    stopped, a content plan staged by the content phase (C(<source_dir>/content-plan.json)) is applied, the
    swap is done and the new server is started. With O(record_phase) it records the phase in the session
    when all steps succeeded.
  - The search index, when C(mcp_server/) or the standards differ from the session's backup - with
    O(index_prebuild), the new version's own C(scripts/build_rag_index.py) builds it while the old server
    still serves (from a shadow of the standards and scripts as the content plan will leave them, with the
    new C(mcp_server/) and dependencies), and it replaces the live index after the swap when the live
    standards still hold what it was built from. Otherwise (not wanted, the builder failed or timed out,
    C(config.json) moves the index, an IDE-launched server runs, the standards changed meanwhile)
    C(standards/.rebuild_index) is created (upstream's own trigger; the new server rebuilds its index
    before it listens, so the wait for a healthy answer includes the rebuild, within O(timeout)).
  - The log offset returned (and recorded) is taken after the old server is gone and after any start that
    lost a port race, so only the new server's own lines are judged later.
  - O(action=restart), O(action=stop) and O(action=start) act per server mode (C(none), C(process),
    C(systemd)); C(auto) resolves to C(systemd) when O(systemd_unit) is set, else C(process) when the
    state file names this project's detached http server, else C(none). A server whose state file says
    C(stdio) or C(dual) was launched by an IDE - it is never stopped or replaced; C(auto) resolves to
    C(none) and the result says the IDE must restart its MCP server (RV(ide_restart_required)), and an
    explicit C(process) mode is refused.
  - A start in process mode that loses the port race (the new process exits with C(address already in use)
    because another server bound the port it had checked) is retried after a random pause.
  - A pid is signalled only when the state file names it, it is alive, it runs C(mcp_server) and it
    belongs to this project (cwd or C(PYTHONPATH)); servers are never looked up by name.
  - After a (re)start the module waits for a fresh state file and a healthy MCP handshake.
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
extends_documentation_fragment:
  - praxis.upgrade.session
options:
  praxis_home:
    description: The installation's C(.praxis-os) directory.
    type: path
    required: true
  project_dir:
    description: The project directory (parent of O(praxis_home)); the server runs with it as cwd.
    type: path
    required: true
  action:
    description: What to do.
    type: str
    choices: [upgrade, swap, deps, restart, stop, start, recover]
    required: true
  source_dir:
    description: The unpacked source checkout on the target; its C(mcp_server/) is swapped in (O(action=swap)).
    type: path
  archive:
    description:
      - The shipped source archive; with O(action=swap) or O(action=upgrade), unpacked and verified into
        O(source_dir) first unless O(source_dir) already holds it (the content phase may have unpacked it).
    type: path
  manifest:
    description:
      - "Source manifest C({relative path: sha256}); entries under C(mcp_server/) are used (O(action=swap))."
    type: dict
  session_id:
    description: Upgrade session id; names the staged C(mcp_server.new-<id>) and C(mcp_server.old-<id>) trees.
    type: str
  state_file:
    description: Session facts file holding the swap journal.
    type: path
  previous_requirements_sha256:
    description: SHA-256 of C(mcp_server/requirements.txt) before the upgrade (O(action=deps)).
    type: str
  previous_requirements_key:
    description:
      - Requirement-set key of C(mcp_server/requirements.txt) before the upgrade (the preflight fact
        C(installed_requirements_key)); pip is skipped when the new file has the same set (comments,
        blank lines and order do not count) and every requirement is installed.
    type: str
  target_requirements_key:
    description:
      - Requirement-set key of the new version's C(mcp_server/requirements.txt) (from M(praxis.upgrade.praxis_source)).
      - Lets a dry run (check mode, nothing staged) say truthfully whether the upgrade will run pip.
    type: str
  pip_args:
    description: Extra C(pip install) arguments, e.g. C([--no-index, --find-links, /srv/wheels]).
    type: list
    elements: str
    default: []
  pip_timeout:
    description: Seconds pip may run before it is killed and the task fails.
    type: float
    default: 900
  post_install_commands:
    description:
      - Optional argv lists run after pip (cwd = project); a failure is a warning, never fatal.
    type: list
    elements: raw
    default: []
  mode:
    description: Server mode (C(praxis_server_mode)); pass the resolved RV(mode) of O(action=stop) to O(action=start).
    type: str
    choices: [auto, none, process, systemd]
    default: auto
  systemd_unit:
    description: systemd unit running the server (C(praxis_systemd_unit)).
    type: str
  systemd_scope:
    description: C(system) units use C(systemctl), C(user) units C(systemctl --user).
    type: str
    choices: [system, user]
    default: system
  server_env:
    description:
      - Environment for every server start (C(praxis_server_env)), e.g. C(HF_HOME), API keys.
      - Also given to pip and the post-install commands (proxies, C(PIP_INDEX_URL)).
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for a fresh state file and a healthy handshake after a (re)start.
    type: float
    default: 90
  index_prebuild:
    description:
      - With O(action=upgrade), build the new search index before the old server stops (see the description);
        false leaves the rebuild to the new server's start (C(standards/.rebuild_index)).
    type: bool
    default: true
  index_build_timeout:
    description:
      - Seconds the index builder may run before the old server stops; one that takes longer is killed and
        the new server rebuilds the index at start instead.
    type: float
    default: 1800
  stop_timeouts:
    description: Seconds to wait after SIGINT, SIGTERM and SIGKILL respectively.
    type: list
    elements: float
    default: [10.0, 10.0, 5.0]
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports what would be swapped, installed, stopped or started, and changes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff_mode).
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: Linux only (reads C(/proc)).
notes:
  - The server is started detached (own session) in http mode, with its log appended to
    C(<praxis_home>/.cache/mcp_server.log); RV(log_offset) lets a validation scan only new lines.
"""

EXAMPLES = r"""
- name: Swap in the new server tree
  praxis.upgrade.praxis_server:
    praxis_home: /srv/app/.praxis-os
    project_dir: /srv/app
    action: swap
    source_dir: /srv/app/.praxis-os/.cache/upgrade/src
    manifest: "{{ praxis_source_result.manifest }}"
    session_id: "{{ praxis_session_id }}"

- name: Install dependencies offline when requirements changed
  praxis.upgrade.praxis_server:
    praxis_home: /srv/app/.praxis-os
    project_dir: /srv/app
    action: deps
    previous_requirements_sha256: "{{ praxis_preflight.requirements_sha256 }}"
    pip_args: [--no-index, --find-links, /srv/wheels]

- name: Restart per server mode and wait for health
  praxis.upgrade.praxis_server:
    praxis_home: /srv/app/.praxis-os
    project_dir: /srv/app
    action: restart
    mode: "{{ praxis_server_mode }}"
    systemd_unit: "{{ praxis_systemd_unit | default(omit) }}"
    server_env: "{{ praxis_server_env }}"
    timeout: "{{ praxis_health_timeout }}"
  register: praxis_restart

- name: Rollback - stop the server, later start it again in the same mode
  praxis.upgrade.praxis_server:
    praxis_home: /srv/app/.praxis-os
    project_dir: /srv/app
    action: stop
  register: praxis_stopped

- name: Rollback - start
  praxis.upgrade.praxis_server:
    praxis_home: /srv/app/.praxis-os
    project_dir: /srv/app
    action: start
    mode: "{{ praxis_stopped.mode }}"
"""

RETURN = r"""
session:
  description: The upgrade session after recording O(record_phase) (see M(praxis.upgrade.praxis_state)).
  returned: when O(record_phase) is set and not in check mode
  type: dict
changed:
  description: Whether anything was (or in check mode would be) changed.
  returned: always
  type: bool
action:
  description: The action performed.
  returned: always
  type: str
mode:
  description: Resolved server mode (C(none), C(process), C(systemd)); null for swap, deps and recover.
  returned: always
  type: str
mode_reason:
  description: Why that mode was chosen.
  returned: always
  type: str
plan:
  description: What was done, or in check mode what would be done, one sentence per step.
  returned: always
  type: list
  elements: str
pid_before:
  description: Verified server pid (or systemd MainPID) before the action, else null.
  returned: always
  type: int
pid_after:
  description: Verified server pid after a start/restart (from the fresh state file), else null.
  returned: always
  type: int
url:
  description: MCP url of the (re)started server.
  returned: always
  type: str
tools:
  description: Tool names the (re)started server listed.
  returned: always
  type: list
  elements: str
log_file:
  description: Server log of process mode.
  returned: always
  type: str
log_offset:
  description: Size of the log once the old server was gone (before the successful start); the new server's lines start at this byte.
  returned: always
  type: int
stopped_by:
  description: Signal that stopped the old server (C(INT), C(TERM), C(KILL)), or null.
  returned: always
  type: str
stop_duration_s:
  description: Seconds the stop took.
  returned: always
  type: float
swapped:
  description: Whether the live C(mcp_server/) was replaced.
  returned: always
  type: bool
swap:
  description: Swap details - C(files), C(added), C(updated), C(removed) (paths relative to the installation).
  returned: when action is swap
  type: dict
journal_recovered:
  description: Whether an interrupted swap was finished or undone from the journal.
  returned: always
  type: bool
recovery:
  description: What the journal recovery did - C(action) (C(none), C(completed), C(undone)) and C(step).
  returned: when action is swap or recover
  type: dict
pip_ran:
  description: Whether pip install ran.
  returned: always
  type: bool
pip_output_tail:
  description: Last part of the pip output (also on failure).
  returned: always
  type: str
deps:
  description: Dependency decision - C(reason), C(requirements_sha256), C(unsatisfied), C(would_run_pip).
  returned: when action is deps
  type: dict
ide_restart_required:
  description: An IDE-launched (stdio/dual) server of this project runs and was left alone; restart it in the IDE.
  returned: always
  type: bool
ide_server_pid:
  description: Pid of the IDE-launched server, else null.
  returned: always
  type: int
ide_reason:
  description: Why the IDE-launched server is left alone and what to do (restart it in the IDE), else null.
  returned: always
  type: str
index_rebuild:
  description:
    - The new search index of O(action=upgrade) (null when none was needed) - C(reasons), C(method)
      (C(prebuilt) - built before the stop and put in place; C(flag) - C(standards/.rebuild_index) created for
      the new server's start), C(prebuild) (C(built), C(duration_s), C(reason) when not built, C(output_tail)),
      C(flag), C(already_requested), C(waited_s) (until the new server answered) and C(done) (the index is in
      place, or the server removed the flag).
  returned: always
  type: dict
start_attempts:
  description: Server starts made in process mode (more than 1 after lost port races).
  returned: always
  type: int
content_plan_applied:
  description: Path of the staged content plan applied with the server stopped, else null.
  returned: always
  type: str
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils import content, procutil, searchindex, serverops, state
from ansible_collections.praxis.upgrade.plugins.module_utils.faults import fault_point
from ansible_collections.praxis.upgrade.plugins.module_utils.session import record_for
from ansible_collections.praxis.upgrade.plugins.module_utils.source import extract
from ansible_collections.praxis.upgrade.plugins.module_utils.state import PHASES


def _base(params):
    log = procutil.log_path_for(params["praxis_home"])
    return {"changed": False, "action": params["action"], "mode": None, "mode_reason": None, "plan": [],
            "pid_before": None, "pid_after": None, "url": None, "tools": [], "log_file": log,
            "log_offset": procutil.log_size(log), "stopped_by": None, "stop_duration_s": 0.0,
            "swapped": False, "journal_recovered": False, "pip_ran": False, "pip_output_tail": "",
            "ide_restart_required": False, "ide_server_pid": None, "ide_reason": None, "index_rebuild": None,
            "start_attempts": 0, "content_plan_applied": None}


def _changed(result, flag):
    """Steps only ever add to ``changed``: an action of several steps changed something when any step did."""
    if flag:
        result["changed"] = True


def _mark_log(result):
    """New log lines start here: taken once the old server is gone (called after every stop), so its
    shutdown lines (uvicorn logs an ERROR on every signalled stop, a client's request cut short) are
    never blamed on the new server."""
    result["log_offset"] = procutil.log_size(result["log_file"])


def _unpack(module, params):
    """The shipped source into source_dir, unless there already: the content phase usually unpacked it,
    and the swap verifies every file it stages anyway, so an existing dir is not hashed a second time."""
    if params["archive"] and not module.check_mode and not os.path.isdir(params["source_dir"]):
        extract(params["archive"], params["source_dir"], params["manifest"])


def do_swap(module, params, result):
    _unpack(module, params)
    swap = serverops.swap_server(params["praxis_home"], params["source_dir"], params["manifest"],
                                 params["state_file"], params["session_id"], check=module.check_mode)
    _changed(result, swap["changed"])
    result.update(swapped=swap["swapped"], journal_recovered=swap["journal_recovered"], recovery=swap["recovery"],
                  swap={k: swap[k] for k in ("files", "added", "updated", "removed")})
    if swap["recovery"]["recovered"]:
        result["plan"].append("%s the swap interrupted at step %s"
                              % (swap["recovery"]["action"], swap["recovery"]["step"]))
    counts = (len(swap["added"]), len(swap["updated"]), len(swap["removed"]))
    if not any(counts):
        result["plan"].append("mcp_server/ already matches the manifest (%d files)" % swap["files"])
    else:
        verb = "would swap" if module.check_mode else "swapped"
        result["plan"].append("%s mcp_server/ (%d files: %d added, %d updated, %d removed)"
                              % ((verb, swap["files"]) + counts))


def do_recover(module, params, result):
    recovery = serverops.recover_swap(params["praxis_home"], params["state_file"], check=module.check_mode)
    _changed(result, recovery["recovered"])
    result.update(journal_recovered=recovery["recovered"], recovery=recovery)
    result["plan"].append("no interrupted swap in the journal" if not recovery["recovered"] else
                          "%s the swap interrupted at step %s" % (recovery["action"], recovery["step"]))


def _requirements_for(params):
    """The new version's requirements: the source's before the swap (upgrade installs them while the
    old server still runs); None: the live tree's."""
    if params["action"] == "upgrade" and params["source_dir"]:
        staged = os.path.join(params["source_dir"], "mcp_server", "requirements.txt")
        if os.path.isfile(staged):
            return staged
    return None


def do_deps(module, params, result):
    requirements = _requirements_for(params)
    planned = None
    if module.check_mode and params["action"] == "upgrade" and requirements is None \
            and params["previous_requirements_key"]:
        planned = params["target_requirements_key"]  # a dry run: nothing staged, the new set is known
    try:
        deps = serverops.ensure_dependencies(
            params["praxis_home"], params["previous_requirements_sha256"], params["pip_args"],
            check=module.check_mode, timeout=params["pip_timeout"],
            post_install_commands=[[str(a) for a in c] for c in params["post_install_commands"]],
            env=params["server_env"], requirements=requirements,
            previous_requirements_key=params["previous_requirements_key"], planned_key=planned)
    except serverops.DependencyError as exc:
        result["pip_output_tail"] = exc.output_tail
        raise
    _changed(result, deps["changed"])
    result.update(pip_ran=deps["pip_ran"], pip_output_tail=deps["pip_output_tail"],
                  deps={k: deps[k] for k in ("reason", "requirements_sha256", "previous_requirements_sha256",
                                             "unsatisfied", "would_run_pip", "duration_s")})
    for warning in deps["warnings"]:
        module.warn(warning)
    if deps["would_run_pip"]:
        result["plan"].append("%s pip install: %s" % ("would run" if module.check_mode else "ran", deps["reason"]))
    else:
        result["plan"].append("pip skipped: %s" % deps["reason"])


def _resolve(params, result):
    mode, reason = procutil.resolve_mode(params["mode"], params["systemd_unit"], params["praxis_home"])
    result.update(mode=mode, mode_reason=reason)
    found = procutil.classify_server(params["praxis_home"])
    if found["kind"] == "ide":
        result.update(ide_server_pid=found["pid"], ide_reason=found["reason"])
        if mode == "none":
            result["ide_restart_required"] = True
    return mode


def _stop_process(module, params, result):
    found = procutil.classify_server(params["praxis_home"])
    if found["kind"] == "ide":
        raise procutil.ProcessError(
            "server mode process, but %s. Next: set praxis_server_mode to auto or none (the IDE keeps its "
            "server; restart it there after the upgrade), or quit the IDE's MCP server first" % found["reason"])
    pid = found["pid"] if found["kind"] == "http" else None
    if pid is None:  # a server this session started that has not published its state file yet
        pid = _unpublished_started_pid(params)
    result["pid_before"] = pid
    if pid is None:
        result["plan"].append("nothing to stop (%s)" % found["reason"])
        return
    result["changed"] = True
    if module.check_mode:
        result["plan"].append("would stop pid %s (INT, then TERM, then KILL)" % pid)
        return
    stopped = procutil.stop(pid, params["stop_timeouts"])
    result.update(stopped_by=stopped["stopped_by"], stop_duration_s=stopped["duration_s"])
    result["plan"].append("stopped pid %s with SIG%s in %.1f s"
                          % (pid, stopped["stopped_by"] or "(gone)", stopped["duration_s"]))


def _wait(module, params, result, pid, started_after):
    waited = procutil.wait_for_server(params["praxis_home"], pid, started_after, params["timeout"],
                                      log_offset=result["log_offset"])
    _waited(module, params, result, waited)


def _waited(module, params, result, waited):
    result.update(pid_after=waited["pid"], url=waited["url"], tools=waited["tools"])
    rebuild = result.get("index_rebuild")
    flagged = rebuild is not None and rebuild["method"] == "flag"
    if rebuild is not None:
        rebuild.update(waited_s=waited["waited_s"], done=bool(waited["ok"]) and (
            not flagged or not searchindex.rebuild_pending(params["praxis_home"])))
    if not waited["ok"]:
        hint = ""
        if flagged and searchindex.rebuild_pending(params["praxis_home"]):
            hint = (" (the new server was still rebuilding its search index: %s exists; a real rebuild takes "
                    "minutes on small hosts — raise praxis_health_timeout)" % rebuild["flag"])
        module.fail_json(msg="the server of %s did not come up healthy: %s%s. Next: fix the cause in the log, "
                             "then re-run the play (or roll back with playbooks/rollback.yml)"
                             % (params["project_dir"], waited["error"], hint), **result)
    result["plan"].append("server pid %s answers MCP at %s (%d tools) after %.1f s"
                          % (waited["pid"], waited["url"], len(waited["tools"]), waited["waited_s"]))
    if flagged:
        if rebuild["done"]:
            module.warn("the new server rebuilt its search index (%s) and answered after %.1f s"
                        % ("; ".join(rebuild["reasons"]), waited["waited_s"]))
        else:
            module.warn("the new server answers but %s is still there: its search index rebuild failed "
                        "(see %s); validate will check search" % (rebuild["flag"], result["log_file"]))


def _unpublished_started_pid(params):
    """The journalled pid of a server this session started, when it still runs mcp_server in this project."""
    pid = serverops.started_pid(params["state_file"])
    return pid if pid is not None and procutil.check_server_pid(pid, params["praxis_home"])[0] else None


def _start_process(module, params, result):
    result["changed"] = True
    if module.check_mode:
        result["plan"].append("would start the server detached in http mode (log %s)" % result["log_file"])
        return

    def journal_started(pid):
        serverops.record_started(params["state_file"], pid, params["praxis_home"])

    waited = procutil.start_until_healthy(params["praxis_home"], params["project_dir"], params["server_env"],
                                          params["timeout"], log_path=result["log_file"], on_start=journal_started)
    result.update(log_offset=waited["log_offset"], start_attempts=waited["attempts"])
    for lost in waited["lost_races"]:
        result["plan"].append("start pid %d lost the port race (address already in use: another server took "
                              "the port it had checked); retried" % lost)
    result["plan"].append("started pid %d detached in http mode" % waited["started_pid"])
    if waited["ok"]:
        serverops.clear_started(params["state_file"])
    elif procutil.check_server_pid(waited["started_pid"], params["praxis_home"])[0]:
        # a start that failed leaves no process behind (a real server still rebuilding its index would
        # otherwise publish itself minutes later, into whatever the rollback restored); verified directly,
        # not through the session journal: install.yml starts servers without an upgrade session
        stopped = procutil.stop(waited["started_pid"], params["stop_timeouts"])
        serverops.clear_started(params["state_file"])
        result["plan"].append("stopped the unhealthy new server pid %d with SIG%s"
                              % (waited["started_pid"], stopped["stopped_by"] or "(gone)"))
    _waited(module, params, result, waited)


def _systemd(module, params, result, verb):
    unit, scope = params["systemd_unit"], params["systemd_scope"]
    result["pid_before"] = procutil.systemd_main_pid(unit, scope)
    if verb == "stop" and result["pid_before"] is None:
        result["plan"].append("unit %s is not running" % unit)
        return
    result["changed"] = True
    if module.check_mode:
        result["plan"].append("would %s unit %s (MainPID %s)" % (verb, unit, result["pid_before"]))
        return
    started_after = time.time()
    getattr(procutil, "systemd_%s" % verb)(unit, scope)
    result["plan"].append("%s unit %s" % ({"restart": "restarted", "stop": "stopped", "start": "started"}[verb],
                                          unit))
    if verb != "stop":
        _wait(module, params, result, None, started_after)


def do_restart(module, params, result):
    mode = _resolve(params, result)
    if mode == "none":
        result["plan"].append("server mode none: nothing to restart (%s)" % result["mode_reason"])
    elif mode == "systemd":
        _systemd(module, params, result, "restart")
    else:
        _stop_process(module, params, result)
        _mark_log(result)
        _start_process(module, params, result)


def do_stop(module, params, result):
    # a rollback stops first: settle an interrupted swap with it (silent when there is none)
    if serverops.journal_in_flight(params["state_file"]):
        do_recover(module, params, result)
    mode = _resolve(params, result)
    if mode == "none":
        result["plan"].append("server mode none: nothing to stop")
    elif mode == "systemd":
        _systemd(module, params, result, "stop")
    else:
        _stop_process(module, params, result)
    _mark_log(result)


def do_start(module, params, result):
    mode = _resolve(params, result)
    if mode == "none":
        result["plan"].append("server mode none: nothing to start")
    elif mode == "systemd":
        _systemd(module, params, result, "start")
    else:
        pid, why = procutil.our_http_server_pid(params["praxis_home"])
        if pid is not None:
            result.update(pid_before=pid, pid_after=pid)
            result["plan"].append("already running: %s" % why)
            return
        _start_process(module, params, result)


def _apply_content_plan(module, params, result):
    """Content staged by the content phase goes live here, with the old server stopped."""
    plan_file = content.plan_path(os.path.abspath(params["praxis_home"]), os.path.basename(params["source_dir"]))
    if not os.path.isfile(plan_file):
        return
    if module.check_mode:
        result["plan"].append("would apply the staged content plan %s" % plan_file)
        return
    applied = content.apply_plan(params["praxis_home"], params["project_dir"], plan_file,
                                 fault=lambda: fault_point("content.midway"))
    result["content_plan_applied"] = plan_file
    result["changed"] = True
    result["plan"].append("applied the staged content plan %s%s"
                          % (plan_file, (": %s" % applied) if isinstance(applied, (str, int)) else ""))


def _staged_plan(params):
    """The content plan the content phase staged for this upgrade (None: there is none)."""
    plan_file = content.plan_path(os.path.abspath(params["praxis_home"]), os.path.basename(params["source_dir"]))
    return content.load_plan(plan_file) if os.path.isfile(plan_file) else None


def _prebuild_index(module, params, result, mode, plan):
    """Before the stop: decide whether the new server needs a new search index (``index_rebuild``) and,
    when it may, build it in a shadow installation while the old server serves. Returns what
    ``_index_in_place`` needs to put it in place (None: nothing was built)."""
    home = params["praxis_home"]
    # this session's backup (a dry run has none: the facts file still holds the last run's); else the live trees
    backup_dir = None if module.check_mode else (state.load(params["state_file"]) or {}).get("backup_path")
    reasons = searchindex.rebuild_reasons(home, backup_dir, serverops.server_subset(params["manifest"]),
                                          searchindex.planned_standards(home, plan))
    if not reasons:
        return None
    prebuild = {"built": False, "duration_s": None, "reason": None, "output_tail": ""}
    result["index_rebuild"] = {"reasons": reasons, "method": "flag", "prebuild": prebuild, "flag": None,
                               "already_requested": False, "waited_s": None, "done": False}
    found = procutil.classify_server(home)
    if not params["index_prebuild"]:
        prebuild["reason"] = "index_prebuild is false (praxis_index_prebuild)"
    elif found["kind"] == "ide":
        prebuild["reason"] = "an IDE-launched server runs the old version with the live index"
    elif mode == "none" and found["kind"] != "none":
        prebuild["reason"] = "server mode none: the running server (pid %s) keeps the live index" % found["pid"]
    else:
        prebuild["reason"] = searchindex.blocker(home)
    if prebuild["reason"]:
        result["plan"].append("the new search index is left to the new server's start: %s" % prebuild["reason"])
        return None
    if module.check_mode:
        result["index_rebuild"]["method"] = "prebuilt"
        result["plan"].append("would build the new search index while the old server serves (%s)" % "; ".join(reasons))
        return None
    shadow = searchindex.shadow_path(home, params["session_id"])
    try:
        searchindex.compose_shadow(home, params["source_dir"], plan, shadow)
        expected = searchindex.fingerprint(os.path.join(shadow, searchindex.STANDARDS))
        built = searchindex.build(home, params["project_dir"], shadow, serverops.venv_tool_env(params["server_env"]),
                                  params["index_build_timeout"])
    except (searchindex.IndexBuildError, OSError) as exc:
        prebuild.update(reason=str(exc), output_tail=getattr(exc, "output_tail", ""))
        module.warn("the new search index could not be built before the stop (%s); the new server rebuilds it "
                    "at start instead, within praxis_health_timeout" % exc)
        result["plan"].append("building the new search index beforehand failed: %s" % exc)
        return None
    prebuild.update(built=True, duration_s=built["duration_s"], output_tail=built["output_tail"])
    result["plan"].append("built the new search index in %.1f s while the old server served (%s)"
                          % (built["duration_s"], "; ".join(reasons)))
    return {"shadow": shadow, "fingerprint": expected}


def _index_in_place(module, params, result, prebuilt):
    """After the swap, with no server running: the index built beforehand in place of the live one when
    the live standards hold what it was built from; else upstream's own trigger for the new server."""
    rebuild = result["index_rebuild"]
    if rebuild is None:
        return
    home = params["praxis_home"]
    if module.check_mode and rebuild["method"] == "prebuilt":
        result["plan"].append("would put the search index built beforehand in place")
        return
    if prebuilt is not None:
        differ = searchindex.same_standards(home, prebuilt["fingerprint"])
        if not differ:
            installed = searchindex.install(home, prebuilt["shadow"])
            rebuild.update(method="prebuilt", done=True)
            result["changed"] = True
            result["plan"].append("put the search index built beforehand in place%s"
                                  % (" of the old one (kept in the backup)" if installed["replaced"] else ""))
            return
        rebuild["prebuild"]["reason"] = "the standards changed while it was built: %s" % ", ".join(differ[:5])
        module.warn("%s; the new server rebuilds the search index at start instead" % rebuild["prebuild"]["reason"])
    request = searchindex.request_index_rebuild(home, rebuild["reasons"], check=module.check_mode)
    rebuild.update(method="flag", flag=request["flag"], already_requested=request["already_requested"])
    result["changed"] = True
    result["plan"].append("%s %s so the new server rebuilds its search index (%s)"
                          % ("would create" if module.check_mode else "created", request["flag"],
                             "; ".join(rebuild["reasons"])))


def do_upgrade(module, params, result):
    """The server phase in one call, downtime kept to stop -> apply staged content -> swap -> start:
    dependencies are installed while the old server still runs; records the phase when all succeeded."""
    _unpack(module, params)
    mode = _resolve(params, result)
    if result["ide_restart_required"]:
        module.warn(result["ide_reason"])
    do_deps(module, params, result)
    plan = _staged_plan(params)
    prebuilt = _prebuild_index(module, params, result, mode, plan)
    # ---- downtime starts: the old server stops only now
    if mode == "systemd":
        _systemd(module, params, result, "stop")
    elif mode == "process":
        _stop_process(module, params, result)
    _mark_log(result)
    # ---- staged content goes in with the old server stopped (content.apply_plan, when a plan exists)
    _apply_content_plan(module, params, result)
    do_swap(module, params, result)
    _index_in_place(module, params, result, prebuilt)
    if mode == "systemd":
        _systemd(module, params, result, "start")
    elif mode == "process":
        _start_process(module, params, result)
    elif result["index_rebuild"] is not None and result["index_rebuild"]["method"] == "flag":
        result["plan"].append("server mode none: the next server start (validate's stdio probe, or the IDE "
                              "restarting its MCP server) rebuilds the search index")
    evidence_keys = ("swapped", "pip_ran", "mode", "pid_after", "log_offset", "ide_restart_required",
                     "ide_server_pid", "index_rebuild")
    recorded = record_for(module, {key: result[key] for key in evidence_keys})
    if recorded:
        result["session"] = recorded


ACTIONS = {"upgrade": do_upgrade, "swap": do_swap, "deps": do_deps, "restart": do_restart, "stop": do_stop, "start": do_start,
           "recover": do_recover}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            praxis_home=dict(type="path", required=True),
            project_dir=dict(type="path", required=True),
            action=dict(type="str", required=True,
                        choices=["upgrade", "swap", "deps", "restart", "stop", "start", "recover"]),
            archive=dict(type="path"),
            record_phase=dict(type="str", choices=list(PHASES)),
            source_dir=dict(type="path"),
            manifest=dict(type="dict"),
            session_id=dict(type="str"),
            state_file=dict(type="path"),
            previous_requirements_sha256=dict(type="str"),
            previous_requirements_key=dict(type="str", no_log=False),
            target_requirements_key=dict(type="str", no_log=False),
            pip_args=dict(type="list", elements="str", default=[]),
            pip_timeout=dict(type="float", default=900.0),
            post_install_commands=dict(type="list", elements="raw", default=[]),
            mode=dict(type="str", choices=["auto", "none", "process", "systemd"], default="auto"),
            systemd_unit=dict(type="str"),
            systemd_scope=dict(type="str", choices=["system", "user"], default="system"),
            server_env=dict(type="dict", default={}),
            timeout=dict(type="float", default=90.0),
            index_prebuild=dict(type="bool", default=True),
            index_build_timeout=dict(type="float", default=1800.0),
            stop_timeouts=dict(type="list", elements="float", default=[10.0, 10.0, 5.0]),
        ),
        required_if=[
            ("action", "swap", ("source_dir", "manifest", "session_id")),
            ("action", "upgrade", ("source_dir", "manifest", "session_id")),
            ("mode", "systemd", ("systemd_unit",)),
        ],
        supports_check_mode=True,
    )
    params = module.params
    begin = time.monotonic()
    home, project = params["praxis_home"], params["project_dir"]
    if not os.path.isdir(home):
        module.fail_json(msg="praxis_home %s does not exist; check praxis_project_dir and praxis_home_name" % home)
    if os.path.realpath(os.path.dirname(os.path.abspath(home))) != os.path.realpath(project):
        module.fail_json(msg="praxis_home %s is not directly inside project_dir %s; pass the project's "
                             ".praxis-os directory" % (home, project))
    if len(params["stop_timeouts"]) != 3:
        module.fail_json(msg="stop_timeouts must have three numbers (after INT, TERM, KILL), got %r"
                             % (params["stop_timeouts"],))
    for command in params["post_install_commands"]:
        if not isinstance(command, list) or not command:
            module.fail_json(msg="post_install_commands item %r is not a non-empty argv list; fix the option"
                                 % (command,))
    if not params["state_file"]:
        params["state_file"] = os.path.join(home, ".cache", "facts.d", "praxis_upgrade.fact")
    result = _base(params)
    try:
        ACTIONS[params["action"]](module, params, result)
    except (procutil.ProcessError, serverops.SwapError, serverops.DependencyError, content.ContentError, ValueError,
            OSError) as exc:
        result["duration_s"] = round(time.monotonic() - begin, 3)
        module.fail_json(msg="praxis_server %s failed for %s: %s" % (params["action"], project, exc), **result)
    result["duration_s"] = round(time.monotonic() - begin, 3)
    if module._diff:
        result["diff"] = dict(prepared="server (%s mode):\n%s\n" % (
            result["mode"] or params["mode"], "\n".join("  " + step for step in result["plan"]) or "  nothing to do"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
