#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_health
short_description: Probe a prAxIs OS MCP server over streamable HTTP or stdio
version_added: "1.0.0"
description:
  - Checks the health of a prAxIs OS MCP server with the MCP protocol itself
    (C(initialize), C(notifications/initialized), C(tools/list)) and optional smoke C(tools/call)s.
  - Over C(http) the url is given or discovered from C(<praxis_home>/.mcp_server_state.json); a
    state file is trusted only when its pid is alive and belongs to this project.
  - Over C(stdio) a fresh server process is spawned, probed, and always stopped again.
  - The probe itself changes nothing and also runs in check mode. C(changed) is true only when
    O(record_phase) is set and a healthy result was recorded in the session's facts file (never in
    check mode); otherwise it is false.
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
extends_documentation_fragment:
  - praxis.upgrade.session
options:
  session_id:
    description: Upgrade session that O(record_phase) records into (default the recorded one).
    type: str
  transport:
    description: How to reach the server.
    type: str
    choices: [http, stdio]
    default: http
  url:
    description:
      - MCP endpoint, for example C(http://127.0.0.1:4242/mcp).
      - When omitted with O(transport=http), it is read from the state file in O(praxis_home).
    type: str
  praxis_home:
    description:
      - Path of the installation's C(.praxis-os) directory (its parent is the project).
      - Used to discover the url (http) and to build the server command and environment (stdio).
    type: path
  command:
    description:
      - Server command (argv list) for O(transport=stdio).
      - Defaults to C(<praxis_home>/venv/bin/python -m mcp_server --transport stdio).
    type: list
    elements: str
  cwd:
    description: Working directory of the stdio server; defaults to the project (parent of O(praxis_home)).
    type: path
  env:
    description:
      - Extra environment for the stdio server (C(praxis_server_env)), merged over the module's environment.
      - C(PYTHONPATH) is set to O(praxis_home) when that is given.
    type: dict
    default: {}
  timeout:
    description: Overall time budget in seconds for all attempts (a real server needs 10-15 s to start).
    type: float
    default: 60
  expected_tools:
    description: Tool names that must be listed by C(tools/list).
    type: list
    elements: str
    default: []
  min_tools:
    description: Minimum number of tools the server must list.
    type: int
    default: 1
  smoke_calls:
    description:
      - Tools to call after listing; each item is a tool name or a dict with C(name) and C(arguments).
      - A call whose result has C(isError) makes the server unhealthy.
    type: list
    elements: raw
    default: []
  search_query:
    description:
      - Query for a C(search_standards) smoke call that must return at least one result (the
        C(praxis_search_query) variable). It proves the new server's search index works - a server
        whose index table is missing answers with no results (grep fallback) and is unhealthy.
      - "Both upstream answer shapes are understood: a C(results) list with C(retrieval_method) and totals, as
        structured content or JSON text, or a bare list. Empty or omitted disables the check."
    type: str
  fail_on_unhealthy:
    description: Fail the task when the server is unhealthy; otherwise return RV(healthy=false).
    type: bool
    default: true
  retries:
    description: Extra attempts after the first while unhealthy (useful right after a restart), within O(timeout).
    type: int
    default: 0
  retry_delay:
    description: Seconds to wait between attempts.
    type: float
    default: 2
  log_file:
    description:
      - Server log to check for C(ERROR)/C(CRITICAL) lines (for example C(<praxis_home>/.cache/mcp_server.log)).
      - Any such line written after O(log_offset) makes the server unhealthy. A missing file has no errors.
    type: path
  log_offset:
    description:
      - Byte offset in O(log_file) where the lines to check start (its size just before the restart).
      - A log shorter than this was rotated and is checked from the start.
    type: int
    default: 0
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The probe changes nothing, so it runs in check mode too.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Probe the running http server of the project
  praxis.upgrade.praxis_health:
    praxis_home: /srv/app/.praxis-os
    expected_tools: [get_server_info, search_standards]
    smoke_calls: [get_server_info]
    search_query: workflow standards
    timeout: 60

- name: Spawn the installed server over stdio (IDE-launched installs)
  praxis.upgrade.praxis_health:
    transport: stdio
    praxis_home: /srv/app/.praxis-os
    env: "{{ praxis_server_env }}"
    min_tools: "{{ praxis_min_tools }}"

- name: Validate after an upgrade, including the server log written since the restart
  praxis.upgrade.praxis_health:
    praxis_home: /srv/app/.praxis-os
    expected_tools: "{{ praxis_expected_tools }}"
    log_file: /srv/app/.praxis-os/.cache/mcp_server.log
    log_offset: 10240

- name: Wait for the restarted server without failing, then decide
  praxis.upgrade.praxis_health:
    url: http://127.0.0.1:4242/mcp
    retries: 10
    retry_delay: 3
    fail_on_unhealthy: false
  register: health
"""

RETURN = r"""
session:
  description: The upgrade session after recording O(record_phase) (only when healthy).
  returned: when O(record_phase) is set, the server is healthy and not in check mode
  type: dict
healthy:
  description: Whether the handshake, tool checks and smoke calls all passed.
  returned: always
  type: bool
transport:
  description: Transport used.
  returned: always
  type: str
url:
  description: Url probed (http), or null.
  returned: always
  type: str
pid:
  description: Server pid from the state file when discovered, else null.
  returned: always
  type: int
server_name:
  description: C(serverInfo.name) from C(initialize).
  returned: always
  type: str
server_version:
  description: C(serverInfo.version) from C(initialize).
  returned: always
  type: str
protocol_version:
  description: Protocol version the server answered.
  returned: always
  type: str
  sample: "2025-06-18"
tools:
  description: Sorted tool names from C(tools/list).
  returned: always
  type: list
  elements: str
missing_tools:
  description: Names of O(expected_tools) the server does not list.
  returned: always
  type: list
  elements: str
tool_count:
  description: Number of tools listed (never taken from C(get_server_info)).
  returned: always
  type: int
response_time_ms:
  description: Milliseconds for the handshake plus C(tools/list) of the last attempt.
  returned: always
  type: int
smoke_results:
  description: Per smoke call, C(ok), C(is_error) and the (truncated) C(text) of the result.
  returned: always
  type: dict
search:
  description:
    - The O(search_query) smoke call, null without one; C(query), C(results) (how many),
      C(retrieval_method) (C(vector), C(grep_fallback)...) and C(error).
  returned: always
  type: dict
errors:
  description: What failed, one sentence each, with what to do.
  returned: always
  type: list
  elements: str
attempts:
  description: Number of probes made.
  returned: always
  type: int
log_errors:
  description: The first C(ERROR)/C(CRITICAL) lines of O(log_file) after O(log_offset) (at most 20).
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.session import record_for
from ansible_collections.praxis.upgrade.plugins.module_utils.state import PHASES
from ansible_collections.praxis.upgrade.plugins.module_utils.mcp_client import (
    log_errors,
    probe_server,
    stdio_command_for,
)


def probe_once(params, budget):
    """One probe attempt; returns the result dict with url and pid added."""
    return probe_server(params["transport"], praxis_home=params["praxis_home"], url=params["url"],
                        command=params["command"], cwd=params["cwd"], extra_env=params["env"], timeout=budget,
                        expected_tools=params["expected_tools"], min_tools=params["min_tools"],
                        smoke_calls=params["smoke_calls"], search_query=params["search_query"] or None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            transport=dict(type="str", choices=["http", "stdio"], default="http"),
            record_phase=dict(type="str", choices=list(PHASES)),
            session_id=dict(type="str"),
            url=dict(type="str"),
            praxis_home=dict(type="path"),
            command=dict(type="list", elements="str"),
            cwd=dict(type="path"),
            env=dict(type="dict", default={}),
            timeout=dict(type="float", default=60.0),
            expected_tools=dict(type="list", elements="str", default=[]),
            min_tools=dict(type="int", default=1),
            smoke_calls=dict(type="list", elements="raw", default=[]),
            search_query=dict(type="str"),
            fail_on_unhealthy=dict(type="bool", default=True),
            retries=dict(type="int", default=0),
            retry_delay=dict(type="float", default=2.0),
            log_file=dict(type="path"),
            log_offset=dict(type="int", default=0),
        ),
        required_if=[
            ("transport", "http", ("url", "praxis_home"), True),
            ("transport", "stdio", ("command", "praxis_home"), True),
        ],
        supports_check_mode=True,
    )
    params = module.params
    for call in params["smoke_calls"]:
        if not (isinstance(call, str) or (isinstance(call, dict) and isinstance(call.get("name"), str))):
            module.fail_json(msg="smoke_calls item %r is neither a tool name nor a dict with a name; "
                                 "fix the smoke_calls option" % (call,))

    end = time.monotonic() + params["timeout"]
    attempts = 0
    while True:
        attempts += 1
        result = probe_once(params, max(0.1, end - time.monotonic()))
        if result["healthy"] or attempts > params["retries"]:
            break
        if end - time.monotonic() <= params["retry_delay"]:
            break
        time.sleep(params["retry_delay"])
    result.update(changed=False, attempts=attempts, log_errors=[])
    if params["log_file"]:
        lines, count = log_errors(params["log_file"], params["log_offset"])
        result["log_errors"] = lines
        if count:
            result["errors"].append("%d ERROR line(s) in %s since the restart, first: %s"
                                    % (count, params["log_file"], lines[0]))
            result["healthy"] = False

    if not result["healthy"] and params["fail_on_unhealthy"]:
        home = params["praxis_home"]
        if params["transport"] == "http":
            where = result["url"] or os.path.join(home, ".mcp_server_state.json")
            hint = "check %s and run the probe again" % (
                os.path.join(home, ".cache", "mcp_server.log") if home else "the server log")
        else:
            where = "`%s`" % " ".join(params["command"] or stdio_command_for(home))
            hint = "run %s by hand in %s to see its full output" % (
                where, params["cwd"] or (os.path.dirname(os.path.realpath(home)) if home else os.getcwd()))
        module.fail_json(msg="MCP server at %s is unhealthy after %d attempt(s): %s. Next: %s."
                             % (where, attempts, "; ".join(result["errors"]), hint), **result)
    if result["healthy"]:
        recorded = record_for(module, dict(tools_after=result["tools"], response_time_ms=result["response_time_ms"]))
        if recorded:
            result.update(changed=True, session=recorded)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
