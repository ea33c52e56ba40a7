"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test --venv downloads get-pip.py from the internet, which these machines cannot reach.
This stand-in bootstraps pip with ensurepip and installs the pinned packages ansible-test asks
for from the machine's package index. `scripts/setup-ansible-test-offline` puts it in ansible-test's
cache, where ansible-test looks before downloading.
"""
import subprocess
import sys

DROPPED = {"--no-setuptools", "--no-wheel"}
args = [arg for arg in sys.argv[1:] if arg not in DROPPED]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade"] + args)
