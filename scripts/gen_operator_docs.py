"""Write the operator contract out of plugins/module_utils/inputs.py (the one table):
roles/common/defaults/main.yml, every role's meta/argument_specs.yml options, README's variables table.
    .venv/bin/python scripts/gen_operator_docs.py   (tests/unit/.../test_inputs.py checks the result)"""
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".build" / "collections"))
from ansible_collections.praxis.upgrade.plugins.module_utils import inputs  # noqa: E402

BEGIN, END = "<!-- variables-table:begin (scripts/gen_operator_docs.py) -->", "<!-- variables-table:end -->"


class Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):  # lists indented under their key (yamllint)
        return super().increase_indent(flow, False)


def dump(data):
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=110)


def main():
    defaults = {v.name: v.default for v in inputs.VARIABLES if v.default is not None}
    (REPO / "roles/common/defaults/main.yml").write_text(
        "---\n# The one default of every operator variable (generated from plugins/module_utils/inputs.py by\n"
        "# scripts/gen_operator_docs.py). Every playbook loads this role at play level (`roles:`), so every play,\n"
        "# its rescue and a phase role run alone see the same values.\n" + dump(defaults))
    for spec_path in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        role = spec_path.parent.parent.name
        doc = yaml.safe_load(spec_path.read_text())
        main = doc["argument_specs"]["main"]
        main["options"] = {v.name: inputs.argument_spec(v) for v in inputs.VARIABLES if role in v.roles}
        spec_path.write_text("---\n" + dump(doc))
    readme = REPO / "README.md"
    text = readme.read_text()
    block = BEGIN + "\n" + inputs.markdown_table() + END
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
        readme.write_text(text)
    else:
        print(block)


if __name__ == "__main__":
    main()
