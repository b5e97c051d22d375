"""Inputs/outputs tables of the Terraform modules' READMEs, from their .tf files.

    .venv/bin/python scripts/terraform_docs.py           rewrite the tables
    .venv/bin/python scripts/terraform_docs.py --check   exit 1 if a README is stale

Each README keeps its own prose; the part between ``<!-- BEGIN_TF_DOCS -->`` and
``<!-- END_TF_DOCS -->`` is generated (python-hcl2 parses the module).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "terraform" / "modules"
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def unquote(value: Any) -> Any:
    """python-hcl2 >= 5 keeps the quotes of string literals; older versions do not."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def expression(value: Any) -> str:
    """An HCL expression as text (``${...}`` unwrapped)."""
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
        return value
    if isinstance(value, dict):
        items = ", ".join(
            f"{unquote(k)} = {expression(v)}" for k, v in value.items() if k != "__is_block__"
        )
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(expression(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def blocks(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    """``{name: body}`` of every ``kind`` block (variable, output) in a .tf file."""
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    found: dict[str, dict[str, Any]] = {}
    for item in parsed.get(kind, []):
        for name, body in item.items():
            found[unquote(name)] = body
    return found


def module_blocks(module: Path, kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for tf in sorted(module.glob("*.tf")):
        found.update(blocks(tf, kind))
    return found


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def tables(module: Path) -> str:
    lines = [
        "## Inputs",
        "",
        "| name | type | default | required | description |",
        "|---|---|---|---|---|",
    ]
    for name, body in module_blocks(module, "variable").items():
        required = "default" not in body
        default = "" if required else f"`{cell(expression(unquote(body['default'])))}`"
        sensitive = " (sensitive)" if body.get("sensitive") is True else ""
        name_cell = f"`{name}`{sensitive}"
        lines.append(
            f"| {name_cell} | `{cell(expression(body.get('type', 'any')))}` | {default} | "
            f"{'yes' if required else 'no'} | {cell(unquote(body.get('description', '')))} |"
        )
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    for name, body in module_blocks(module, "output").items():
        flag = " (sensitive)" if body.get("sensitive") is True else ""
        lines.append(f"| `{name}`{flag} | {cell(unquote(body.get('description', '')))} |")
    return "\n".join(lines)


def render(readme: str, module: Path) -> str:
    generated = f"{BEGIN}\n{tables(module)}\n{END}"
    if BEGIN in readme and END in readme:
        head, _, rest = readme.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + generated + tail
    return readme.rstrip("\n") + "\n\n" + generated + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale READMEs, change nothing")
    args = parser.parse_args()
    stale = []
    for module in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        readme = module / "README.md"
        current = readme.read_text(encoding="utf-8") if readme.exists() else f"# {module.name}\n"
        wanted = render(current, module)
        if wanted != current:
            stale.append(readme.relative_to(ROOT))
            if not args.check:
                readme.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        print("stale (run scripts/terraform_docs.py):", *stale, file=sys.stderr)
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
