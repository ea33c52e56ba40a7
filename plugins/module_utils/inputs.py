# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's contract: one table of every `praxis_*` variable, used to validate and to document.

`VARIABLES` is the single source of truth. `roles/common/defaults/main.yml` holds the same defaults
(loaded at play level by every playbook), each role's `meta/argument_specs.yml` lists the same options,
and README's variables table is `markdown_table()`; unit tests keep all four in step.

`validate()` checks the values an operator gave (types, ranges, choices, the `serial` shape) and
reports every unknown `praxis_*` name as a likely typo with the closest known name. Pipeline-internal
variables are named `__praxis_*` and are never an operator's business.
Pure, stdlib-only: called by the action plugins on the controller and by the unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

PREFIX = "praxis_"
INTERNAL_PREFIX = "__praxis_"
NEXT_DOCS = "see the variables table in README.md (ansible-doc -t role praxis.upgrade.preflight)"
BOOL_TRUE = ("yes", "on", "1", "true", "y", "t")
BOOL_FALSE = ("no", "off", "0", "false", "n", "f")
PLAIN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PERCENT_RE = re.compile(r"^\s*(\d+)\s*%\s*$")
DERIVED = "derived"


class Var(NamedTuple):
    """One operator variable. `type` is an Ansible argument-spec type; `minimum`/`maximum` bound ints."""

    name: str
    type: str
    default: Any
    description: str
    choices: Optional[Tuple[str, ...]] = None
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    elements: Optional[str] = None
    required: bool = False
    check: Optional[str] = None  # name of an extra shape check in CHECKS
    roles: Tuple[str, ...] = ()  # phase roles that read it (their meta/argument_specs.yml list it)


ALL = ("preflight", "backup", "content", "server", "validate", "cleanup", "rollback", "install")

VARIABLES: Tuple[Var, ...] = (
    Var("praxis_source", "path", None, "Controller path of the prAxIs OS source checkout to install (a clean git "
        "work tree). Required by C(upgrade.yml) and C(install.yml)."),
    Var("praxis_project_dir", "path", None, "Absolute path of the project holding the installation, per host (one "
        "inventory host per installation).", required=True, check="absolute", roles=ALL),
    Var("praxis_home_name", "str", ".praxis-os", "Name of the installation directory inside the project.",
        check="plain_name", roles=ALL),
    Var("praxis_home", "str", "{{ praxis_project_dir }}/{{ praxis_home_name }}", "Derived from "
        "C(praxis_project_dir) and C(praxis_home_name); do not set it.", check=DERIVED, roles=ALL),
    Var("praxis_server_mode", "str", "auto", "How the server is restarted: C(auto) (systemd if a unit is set, else "
        "process if this project's http server runs, else none), C(none), C(process) or C(systemd).",
        choices=("auto", "none", "process", "systemd"), roles=("preflight", "rollback", "install")),
    Var("praxis_systemd_unit", "str", "", "systemd unit running the server (systemd mode).",
        roles=("preflight", "server", "rollback", "install")),
    Var("praxis_systemd_scope", "str", "system", "Scope of that unit.", choices=("system", "user"),
        roles=("server", "rollback", "install")),
    Var("praxis_server_env", "dict", {}, "Environment (names to string values) for every server start and stdio "
        "probe, for example C(HF_HUB_OFFLINE: \"1\").", check="env", roles=("preflight", "server", "validate",
                                                                            "rollback", "install")),
    Var("praxis_health_timeout", "int", 90, "Seconds to wait for a healthy MCP answer (a real server needs 60 or "
        "more).", minimum=1, roles=("preflight", "server", "validate", "rollback", "install")),
    Var("praxis_index_prebuild", "bool", True, "Build the new version's search index while the old server still "
        "serves (its own C(scripts/build_rag_index.py), from the standards as the upgrade will leave them) and put it "
        "in place at the swap; false leaves the rebuild to the new server's start (C(standards/.rebuild_index)), "
        "inside the downtime and within C(praxis_health_timeout).", roles=("server",)),
    Var("praxis_index_build_timeout", "int", 1800, "Seconds that build may take before it is killed and the new "
        "server rebuilds the index at start instead.", minimum=1, roles=("server",)),
    Var("praxis_expected_tools", "list", [], "Tool names the upgraded server must list.", elements="str",
        roles=("validate", "install")),
    Var("praxis_min_tools", "int", 1, "Least number of tools the upgraded server must list.", minimum=0,
        roles=("validate", "install")),
    Var("praxis_smoke_calls", "list", ["get_server_info"], "Tools called without arguments after the upgrade; "
        "each must answer without an error.", elements="str", roles=("validate", "install")),
    Var("praxis_search_query", "str", "workflow standards", "Query of a C(search_standards) call that must return "
        "at least one result after the upgrade (the new server's search index is rebuilt when standards or "
        "mcp_server changed); an empty string disables the check.", roles=("validate", "install")),
    Var("praxis_conflict_policy", "str", "keep_local", "A locally modified file that upstream also changed: "
        "C(keep_local) (keep it, write C(<name>.upstream) beside it), C(take_upstream) (replace it; the local copy "
        "stays in the backup) or C(fail) (roll back).", choices=("keep_local", "take_upstream", "fail"),
        roles=("content", "install")),
    Var("praxis_pip_args", "list", [], "Extra pip arguments as a list, for example C([--no-index, --find-links, "
        "/srv/wheels]) for an offline fleet.", elements="str", roles=("server", "install")),
    Var("praxis_keep_backups", "int", 3, "Backups kept per installation after an upgrade (at least 1; this run's "
        "backup is never pruned).", minimum=1, roles=("cleanup",)),
    Var("praxis_lock_stale_after", "int", 86400, "Seconds after the last heartbeat of another run's lock when it "
        "counts as stale and is taken over.", minimum=1, roles=("preflight", "backup", "install")),
    Var("praxis_break_lock", "bool", False, "Take over a live or corrupt lock of another run (only when you are "
        "sure that run is gone).", roles=("preflight", "backup", "install")),
    Var("praxis_report_dir", "path", "{{ lookup('praxis.upgrade.controller_cwd') }}/praxis-reports",
        "Controller directory for run reports and the packed source archive (C(sources/)); default "
        "C(praxis-reports) below the real directory C(ansible-playbook) was started from.",
        check="absolute", roles=("preflight", "cleanup", "install")),
    Var("praxis_serial", "raw", [1, "25%", "100%"], "Batch sizes of the upgrade (canary first): an int >= 1, "
        "C(\"N%\") with N 1-100, or a non-empty list of those. A run-level value: pass it with C(-e).",
        check="serial"),
    Var("praxis_max_fail_percentage", "int", 0, "Percentage (0-100) of failed hosts in a batch that still lets "
        "the run go on to the next batch. A run-level value: pass it with C(-e).", minimum=0, maximum=100),
    Var("praxis_install_mode", "str", "install", "C(install.yml): C(install) makes a new installation (nothing to do "
        "when it is installed at the source's commit and healthy; refused over an installation at another commit); "
        "C(adopt) records the base manifest and commit of an installation made by upstream's docs (no base "
        "manifest, no C(VERSION.txt)) without changing any framework file.", choices=("install", "adopt"),
        roles=("install",)),
    Var("praxis_backup_name", "str", "", "C(rollback.yml): the backup to restore, a name inside this "
        "installation's C(.backups/) such as C(2026-01-31-120000) (never a path); empty: the latest.",
        check="backup_name", roles=("rollback",)),
    Var("praxis_rollback_reason", "str", "rollback.yml requested by the operator", "C(rollback.yml): why, "
        "recorded in the session.", roles=("rollback",)),
)

BY_NAME: Dict[str, Var] = {v.name: v for v in VARIABLES}
# Run-level values Ansible templates into the upgrade play's `serial`/`max_fail_percentage` before any host
# variable exists: extra vars or the default, never the inventory.
BATCH_VARS = ("praxis_serial", "praxis_max_fail_percentage")


# --------------------------------------------------------------------------- conversions


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    for kind in (bool, int, float, str, list, tuple, dict):  # builtin names, not ansible's tagged subclasses
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def as_int(value: Any) -> Optional[int]:
    """An int from an int or a decimal string (`-e x=5` gives a string); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^\s*[-+]?\d+\s*$", value):
        return int(value)
    return None


def as_bool(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in BOOL_TRUE:
        return True
    if text in BOOL_FALSE:
        return False
    return None


def serial_problem(value: Any) -> Optional[str]:
    """Why `value` is not a valid `serial` (int >= 1, "N%" 1-100, or a non-empty list of those), else None."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        return "is an empty list"
    for item in items:
        number = as_int(item)
        match = PERCENT_RE.match(item) if isinstance(item, str) else None
        if number is not None:
            if number < 1:
                return "has batch size %d (a batch needs at least 1 host)" % number
        elif match:
            if not 1 <= int(match.group(1)) <= 100:
                return "has %r (a percentage must be 1%%-100%%)" % item
        else:
            return "has %r of type %s (need an int >= 1 or a string \"N%%\")" % (item, _type_name(item))
    return None


# --------------------------------------------------------------------------- checks


def _check_value(var: Var, value: Any) -> Optional[str]:
    """Why `value` is wrong for `var` (a sentence fragment after the variable name), else None."""
    if var.check == DERIVED:
        return None
    if value is None:
        return "is null (unset it to get the default %r)" % (var.default,) if not var.required else "is null"
    if var.type == "int":
        number = as_int(value)
        if number is None:
            return "is %r of type %s, not an integer" % (value, _type_name(value))
        if var.minimum is not None and number < var.minimum:
            return "is %d, below the least allowed value %d" % (number, var.minimum)
        if var.maximum is not None and number > var.maximum:
            return "is %d, above the greatest allowed value %d" % (number, var.maximum)
    elif var.type == "bool":
        if as_bool(value) is None:
            return "is %r, not a boolean (true or false)" % (value,)
    elif var.type in ("str", "path"):
        if not isinstance(value, str):
            return "is %r of type %s, not a string" % (value, _type_name(value))
        if var.choices and value not in var.choices:
            close = difflib.get_close_matches(value, var.choices, n=1)
            return "is %r, not one of %s%s" % (value, ", ".join(var.choices),
                                               " (did you mean %r?)" % close[0] if close else "")
    elif var.type == "list":
        if not isinstance(value, (list, tuple)):
            return ("is %r of type %s, not a list; write it as a YAML list, e.g. [%s]"
                    % (value, _type_name(value), ", ".join(repr(p) for p in str(value).split()) or "..."))
        if var.elements == "str":
            bad = [item for item in value if not isinstance(item, str)]
            if bad:
                return "has items that are not strings: %r (quote them)" % (bad,)
    elif var.type == "dict":
        if not isinstance(value, Mapping):
            return "is %r of type %s, not a dict" % (value, _type_name(value))
    return _CHECKS[var.check](value) if var.check else None


def _absolute(value: str) -> Optional[str]:
    if not value.strip():
        return "is empty"
    if not os.path.isabs(os.path.expanduser(value)):
        return "is %r, a relative path (give an absolute path)" % value
    return None


def _plain_name(value: str) -> Optional[str]:
    if not PLAIN_NAME_RE.match(value) or value in (".", ".."):
        return "is %r, not a plain directory name (no '/', no '..')" % value
    return None


def _backup_name(value: str) -> Optional[str]:
    if value and (not PLAIN_NAME_RE.match(value) or value.startswith(".")):
        return ("is %r, not a backup name: give the name of a directory inside this installation's .backups/ "
                "(e.g. 2026-01-31-120000), never a path" % value)
    return None


def _env(value: Mapping) -> Optional[str]:
    bad_names = [k for k in value if not isinstance(k, str) or not ENV_NAME_RE.match(k)]
    if bad_names:
        return "has names that are not environment variable names: %r" % (bad_names,)
    bad_values = ["%s=%r" % (k, v) for k, v in value.items() if not isinstance(v, str)]
    if bad_values:
        return "has values that are not strings: %s (quote them, e.g. HF_HUB_OFFLINE: \"1\")" % ", ".join(bad_values)
    return None


def _serial(value: Any) -> Optional[str]:
    problem = serial_problem(value)
    return None if problem is None else "%s; use e.g. 1, \"25%%\" or [1, \"25%%\", \"100%%\"]" % problem


_CHECKS = {"absolute": _absolute, "plain_name": _plain_name, "backup_name": _backup_name, "env": _env,
           "serial": _serial}


def closest(name: str, known: Sequence[str] = tuple(BY_NAME)) -> Optional[str]:
    """The known name `name` most likely misspells (compared without the shared `praxis_` prefix)."""
    stems = {k[len(PREFIX):]: k for k in known if k.startswith(PREFIX)}
    found = difflib.get_close_matches(name[len(PREFIX):] if name.startswith(PREFIX) else name, list(stems),
                                      n=1, cutoff=0.7)
    return stems[found[0]] if found else None


def unknown_names(names: Sequence[str]) -> List[str]:
    """Problems for `praxis_*` names that are not operator variables (internal names are `__praxis_*`)."""
    problems = []
    for name in sorted(set(names)):
        if not name.startswith(PREFIX) or name in BY_NAME:
            continue
        guess = closest(name)
        hint = "did you mean %s? Rename it" % guess if guess else "remove it or rename it"
        problems.append("unknown variable %s (a likely typo: it would be silently ignored); Next: %s"
                        % (name, hint))
    return problems


def read_values(names: Iterable[str], read: Callable[[str], Any],
                errors: Tuple[type, ...]) -> Tuple[Dict[str, Any], List[str]]:
    """({name: read(name)}, [problems]) for the `praxis_*` names among `names`. `read` evaluates one variable
    (the action plugins template it); one that raises one of `errors` (e.g. it refers to an undefined
    variable) is a problem naming it, with the next step."""
    values: Dict[str, Any] = {}
    problems: List[str] = []
    for name in names:
        if not name.startswith(PREFIX):
            continue
        try:
            values[name] = read(name)
        except errors as exc:
            problems.append("%s cannot be evaluated (%s); Next: fix its value in the inventory or -e"
                            % (name, (str(exc).splitlines() or [type(exc).__name__])[0]))
    return values, problems


def validate(values: Mapping[str, Any], required: Sequence[str] = ()) -> List[str]:
    """Every problem with the operator's `praxis_*` values (only the names present are checked), each with
    a next step. `required` names must be present and non-empty."""
    problems = unknown_names(list(values))
    for name in required:
        if values.get(name) in (None, ""):
            problems.append("%s is not set; Next: set it (%s)" % (name, BY_NAME[name].description))
    for name in sorted(values):
        var = BY_NAME.get(name)
        if var is None or (name in required and values.get(name) in (None, "")):
            continue
        why = _check_value(var, values[name])
        if why:
            problems.append("%s %s; Next: fix it (%s)" % (name, why, _allowed(var)))
    return problems


def _allowed(var: Var) -> str:
    if var.choices:
        return "one of " + ", ".join(var.choices)
    if var.type == "int":
        low = "" if var.minimum is None else ">= %d" % var.minimum
        high = "" if var.maximum is None else "<= %d" % var.maximum
        return "an integer %s" % " and ".join(p for p in (low, high) if p)
    return {"path": "an absolute path", "bool": "true or false", "dict": "a dict of NAME: \"string\"",
            "list": "a YAML list of strings", "raw": "e.g. 1, \"25%\" or [1, \"25%\", \"100%\"]"}.get(var.type, "a string")


def run_level_conflicts(per_host: Mapping[str, Mapping[str, Any]], effective: Mapping[str, Any]) -> List[str]:
    """Warnings for run-level values an inventory sets that the run cannot honour (`serial` and
    `max_fail_percentage` are decided before any host's variables exist): name the host and the way out."""
    warnings = []
    for name in BATCH_VARS:
        for host, values in sorted(per_host.items()):
            if name in values and values[name] != effective.get(name):
                warnings.append(
                    "%s=%r is set in the inventory for %s but the play's batches use %r: Ansible decides serial "
                    "and max_fail_percentage before it reads inventory variables. Next: pass it on the command "
                    "line (-e '{\"%s\": %s}') and remove it from the inventory"
                    % (name, values[name], host, effective.get(name), name, json.dumps(values[name])))
                break
    return warnings


INPUTS_ARGS = dict(
    hosts=dict(type="list", elements="str", default=[]),
    report_dir=dict(type="str", default=""),
)


def effective_run_values(extra_vars: Mapping[str, Any]) -> Dict[str, Any]:
    """The run-level values the upgrade play's `serial`/`max_fail_percentage` use: extra vars, else default."""
    return {name: extra_vars.get(name, BY_NAME[name].default) for name in BATCH_VARS}


def failure_message(where: str, problems: Sequence[str]) -> str:
    return ("operator input for %s has %d problem(s), nothing was changed: %s"
            % (where, len(problems), " | ".join(problems)))


def markdown_table() -> str:
    """README's variables table (a unit test checks README holds exactly this)."""
    rows = ["| variable | type | default | allowed | description |", "|---|---|---|---|---|"]
    for var in VARIABLES:
        if var.required:
            default = "**required**"
        elif var.default is None:
            default = "(none)"
        else:
            default = "`%s`" % (json.dumps(var.default) if not isinstance(var.default, str) else var.default or '""')
        if var.choices:
            allowed = ", ".join("`%s`" % c for c in var.choices)
        elif var.type == "int":
            allowed = _allowed(var).replace("an integer ", "")
        elif var.check == "serial":
            allowed = "int >= 1, `\"N%\"`, or a list of those"
        else:
            allowed = ""
        kind = "list of %s" % var.elements if var.elements else var.type
        text = re.sub(r"C\(([^)]*)\)", r"`\1`", var.description).replace("|", "\\|")
        rows.append("| `%s` | %s | %s | %s | %s |" % (var.name, kind, default.replace("|", "\\|"), allowed, text))
    return "\n".join(rows) + "\n"


def argument_spec(var: Var) -> Dict[str, Any]:
    """The role argument-spec entry for `var` (what roles/*/meta/argument_specs.yml must say)."""
    spec: Dict[str, Any] = {"type": var.type, "description": var.description}
    if var.required:
        spec["required"] = True
    elif var.default is not None:
        spec["default"] = var.default
    if var.choices:
        spec["choices"] = list(var.choices)
    if var.elements:
        spec["elements"] = var.elements
    return spec
