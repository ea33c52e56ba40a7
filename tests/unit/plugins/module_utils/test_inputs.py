"""The operator contract: one table validates every praxis_* input and documents it."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.praxis.upgrade.plugins.module_utils import inputs

REPO = Path(__file__).resolve().parents[4]
ROLES = ("preflight", "backup", "content", "server", "validate", "cleanup", "rollback", "install")


def problems(**values):
    return inputs.validate(values)


@pytest.mark.parametrize("values, words", [
    ({"praxis_conflict_policy": "keep_locl"}, ["praxis_conflict_policy", "keep_locl", "did you mean 'keep_local'"]),
    ({"praxis_server_mode": "proces"}, ["praxis_server_mode", "one of auto, none, process, systemd"]),
    ({"praxis_keep_backups": -1}, ["praxis_keep_backups is -1, below the least allowed value 1"]),
    ({"praxis_keep_backups": "three"}, ["praxis_keep_backups is 'three' of type str, not an integer"]),
    ({"praxis_keep_backups": 0}, ["below the least allowed value 1"]),
    ({"praxis_health_timeout": 0}, ["praxis_health_timeout is 0"]),
    ({"praxis_health_timeout": -5}, ["praxis_health_timeout is -5"]),
    ({"praxis_lock_stale_after": 0}, ["praxis_lock_stale_after is 0"]),
    ({"praxis_min_tools": -1}, ["praxis_min_tools is -1"]),
    ({"praxis_max_fail_percentage": 101}, ["above the greatest allowed value 100"]),
    ({"praxis_max_fail_percentage": -1}, ["below the least allowed value 0"]),
    ({"praxis_serial": "abc"}, ["praxis_serial", "'abc'", "\"25%\""]),
    ({"praxis_serial": -1}, ["praxis_serial has batch size -1"]),
    ({"praxis_serial": 0}, ["praxis_serial has batch size 0"]),
    ({"praxis_serial": "0%"}, ["1%-100%"]),
    ({"praxis_serial": "150%"}, ["1%-100%"]),
    ({"praxis_serial": []}, ["empty list"]),
    ({"praxis_serial": [1, "x"]}, ["'x'"]),
    ({"praxis_serial": [1, None]}, ["None of type null"]),
    ({"praxis_pip_args": "--no-index --find-links /w"}, ["not a list", "['--no-index', '--find-links', '/w']"]),
    ({"praxis_pip_args": ["--x", 3]}, ["not strings"]),
    ({"praxis_server_env": "HF_HOME=/x"}, ["not a dict"]),
    ({"praxis_server_env": {"HF_HUB_OFFLINE": 1}}, ["HF_HUB_OFFLINE=1", "quote them"]),
    ({"praxis_server_env": {"BAD NAME": "x"}}, ["not environment variable names"]),
    ({"praxis_expected_tools": "search_standards"}, ["praxis_expected_tools", "not a list"]),
    ({"praxis_backup_name": "/other/project/.praxis-os/.backups/2026-01-01-000000"}, ["never a path"]),
    ({"praxis_backup_name": "../x"}, ["never a path"]),
    ({"praxis_home_name": "a/b"}, ["not a plain directory name"]),
    ({"praxis_break_lock": "maybe"}, ["not a boolean"]),
    ({"praxis_report_dir": "reports"}, ["relative path"]),
    ({"praxis_keep_backups": None}, ["praxis_keep_backups is null"]),
    ({"praxis_conflict_polcy": "keep_local"}, ["unknown variable praxis_conflict_polcy", "praxis_conflict_policy"]),
    ({"praxis_server_mod": "none"}, ["unknown variable praxis_server_mod", "did you mean praxis_server_mode"]),
    ({"praxis_zzzz_qqqq": 1}, ["unknown variable praxis_zzzz_qqqq", "remove it or rename it"]),
])
def test_bad_values_are_named_with_the_next_step(values, words):
    found = problems(**values)
    assert len(found) == 1, found
    assert all(word in found[0] for word in words), found[0]
    assert "Next:" in found[0] or "Rename it" in found[0] or "rename it" in found[0]


@pytest.mark.parametrize("values", [
    {"praxis_keep_backups": "5"}, {"praxis_keep_backups": 1}, {"praxis_serial": 2}, {"praxis_serial": "2"},
    {"praxis_serial": "100%"}, {"praxis_serial": [1, "25%", "100%"]}, {"praxis_max_fail_percentage": "0"},
    {"praxis_break_lock": "yes"}, {"praxis_break_lock": True}, {"praxis_pip_args": []},
    {"praxis_server_env": {"HF_HOME": "/x"}}, {"praxis_backup_name": "2026-01-31-120000-2"},
    {"praxis_backup_name": ""}, {"praxis_home": "/anything"}, {"__praxis_session": {}}, {"other_var": 1},
    {"praxis_report_dir": "~/reports"},
])
def test_good_values_pass(values):
    assert problems(**values) == []


def test_every_default_passes_its_own_check():
    defaults = {v.name: v.default for v in inputs.VARIABLES if v.default is not None and "{{" not in str(v.default)}
    assert inputs.validate(defaults) == []


def test_required_names_are_reported_missing():
    found = inputs.validate({}, required=["praxis_project_dir"])
    assert found and "praxis_project_dir is not set" in found[0]


def test_read_values_reads_only_praxis_names_and_names_what_cannot_be_evaluated():
    """The one reader both action plugins use (praxis_inputs: hostvars; praxis_preflight: task vars)."""
    variables = {"praxis_min_tools": 2, "praxis_report_dir": "{{ nope }}", "__praxis_src": {}, "ansible_host": "x"}
    read = []

    def template(name):
        read.append(name)
        if "{{" in str(variables[name]):
            raise LookupError("'nope' is undefined\nmore detail")
        return variables[name]

    values, found = inputs.read_values(variables, template, (LookupError,))
    assert values == {"praxis_min_tools": 2} and sorted(read) == ["praxis_min_tools", "praxis_report_dir"]
    assert found == ["praxis_report_dir cannot be evaluated ('nope' is undefined); Next: fix its value in the "
                     "inventory or -e"]


def test_run_level_values_set_in_the_inventory_warn_naming_the_host_and_the_fix():
    warnings = inputs.run_level_conflicts({"h1": {"praxis_serial": 5}, "h2": {}},
                                          {"praxis_serial": [1, "25%", "100%"], "praxis_max_fail_percentage": 0})
    assert len(warnings) == 1 and "h1" in warnings[0] and "-e" in warnings[0]
    assert inputs.run_level_conflicts({"h1": {"praxis_serial": 5}}, {"praxis_serial": 5}) == []


# --- one table: defaults, argument specs and README agree ---------------------------------------

def test_common_defaults_are_the_table_defaults():
    defaults = yaml.safe_load((REPO / "roles/common/defaults/main.yml").read_text())
    expected = {v.name: v.default for v in inputs.VARIABLES if v.default is not None}
    assert defaults == expected


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_specs_list_operator_variables_from_the_table(role):
    spec = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    expected = {v.name: inputs.argument_spec(v) for v in inputs.VARIABLES if role in v.roles}
    assert options == expected
    assert not any(name.startswith("__") for name in options)


def test_readme_holds_the_generated_variables_table():
    assert inputs.markdown_table() in (REPO / "README.md").read_text()


def test_every_variable_the_roles_and_playbooks_read_is_in_the_table_or_internal():
    import re

    used = set()
    for path in list((REPO / "roles").rglob("*.yml")) + list((REPO / "playbooks").glob("*.yml")):
        used |= set(re.findall(r"(?<![\w.])praxis_[a-z_]+", path.read_text()))
    modules = {p.stem for p in (REPO / "plugins/modules").glob("praxis_*.py")}
    tags = {"praxis_" + phase for phase in ROLES if phase != "rollback"}
    stray = sorted(used - set(inputs.BY_NAME) - modules - tags - {"praxis_upgrade"})
    assert stray == [], "rename pipeline variables to __praxis_* or add operator variables to inputs.VARIABLES"
