"""The fleet gives each host its own user, sshd and home; installs are the v1 fixture and healthy."""
from __future__ import annotations

from tests.molecule.fleetlib import Fleet, assert_untouched


def test_each_host_is_its_own_user_over_ssh(fleet: Fleet, name: str) -> None:
    host = fleet.host(name)
    assert host.user().name == name
    assert host.file(fleet.project(name)).user == name
    assert host.check_output("python3 -c 'import sys; print(sys.executable)'") == "/usr/bin/python3"


def test_v1_installed_and_healthy(fleet: Fleet, name: str) -> None:
    assert_untouched(fleet, name)
    version = fleet.host(name).file(f"{fleet.project(name)}/.praxis-os/VERSION.txt").content_string
    assert f"commit={fleet.commit('v1')}" in version


def test_become_works(fleet: Fleet, name: str) -> None:
    assert fleet.host(name).run("sudo -n id -u").stdout.strip() == "0"
