# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin: ship the controller's source archive (option `src`) to the target in the same task as the
plan, instead of an `ansible.builtin.copy` task before it (which costs a stat and a copy module run per host).
The archive goes to the connection's temporary directory; the module installs it at `archive` atomically.
In check mode nothing is shipped: the dry run plans from the manifest alone."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.praxis.upgrade.plugins.module_utils.content import SRC_WITHOUT_ARCHIVE


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # the connection's tmpdir is used
        args = dict(self._task.args)
        src = args.pop("src", None)
        try:
            if src and not self._task.check_mode:
                if not args.get("archive"):  # checked before shipping anything; the module checks it the same way
                    raise AnsibleActionFail(SRC_WITHOUT_ARCHIVE)
                local = os.path.realpath(os.path.expanduser(src))
                if not os.path.isfile(local):
                    raise AnsibleActionFail("the source archive %s does not exist on the controller; re-run the "
                                            "play from its start so praxis_source packs it again" % src)
                remote = self._connection._shell.join_path(self._connection._shell.tmpdir, os.path.basename(local))
                self._transfer_file(local, remote)
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
                args["src"] = remote
            result.update(self._execute_module(module_name="praxis.upgrade.praxis_content", module_args=args,
                                               task_vars=task_vars))
        except AnsibleActionFail as exc:
            result.update(failed=True, changed=False, msg=str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
