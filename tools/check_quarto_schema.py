#!/usr/bin/env python
"""Validate the site configuration against Quarto's own YAML schema, without Quarto.

    python tools/check_quarto_schema.py QUARTO_CLI_CHECKOUT

QUARTO_CLI_CHECKOUT is a clone of https://github.com/quarto-dev/quarto-cli (only its
src/resources/schema/*.yml files are read). The configuration is `_quarto.yml` merged with its
metadata files (nbs/nbdev.yml, nbs/sidebar.yml), as Quarto reads it. This is a small interpreter of
Quarto's schema language (object/closed/super, anyOf, allOf, arrayOf, maybeArrayOf, enum, record,
ref, string/path/number/boolean/null/any) covering what `project:`, `website:` and `format:` use;
it reports unknown keys in closed objects and values of the wrong type. The test suite runs the same
configuration through quicker structural checks (tests/test_docs_config.py) that need no checkout.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_site  # noqa: E402

KINDS = ("anyOf", "allOf", "boolean", "arrayOf", "enum", "maybeArrayOf", "null", "number", "object", "path",
         "record", "ref", "resolveRef", "string", "pattern", "schema")


class Schema:
    def __init__(self, folder: Path):
        load = lambda f: yaml.safe_load(f.read_text(encoding="utf-8")) or []
        self.defs = {e["id"]: e for e in load(folder / "definitions.yml")}
        self.project = load(folder / "project.yml")
        aliases = load(folder / "format-aliases.yml")["aliases"]
        self.aliases = aliases
        self.doc_fields = []
        for f in sorted(folder.glob("*.yml")):
            if f.name.startswith("document-") or f.name.startswith("cell-"):
                for field in load(f):
                    ctx = (field.get("tags") or {}).get("contexts") or []
                    if f.name.startswith("document-") or any(c.startswith("document-") for c in ctx):
                        self.doc_fields.append(field)

    def expand(self, names):
        out = []
        for n in names:
            out += self.expand(self.aliases[n[1:]]) if n.startswith("$") else [n]
        return out

    def applies(self, field, fmt):
        formats = (field.get("tags") or {}).get("formats")
        if formats is None:
            return True
        off = [f[1:] for f in formats if f.startswith("!")]
        on = [f for f in formats if not f.startswith("!")]
        if off and fmt in self.expand(off):
            return False
        return not on or fmt in self.expand(on)

    # ------------------------------------------------------------------ validation
    def check(self, v, s, path, errs) -> bool:
        n = len(errs)
        self._check(v, s, path, errs)
        return len(errs) == n

    def _props(self, s):
        "Properties of an object schema, including those of its `super` schemas."
        o = s["object"] or {}
        props = dict(o.get("properties") or {})
        sup = o.get("super")
        for base in (sup if isinstance(sup, list) else [sup] if sup else []):
            base = self.resolve(base)
            if "object" in base:
                props = {**self._props(base), **props}
        return props

    def resolve(self, s):
        while isinstance(s, dict):
            if "ref" in s:
                s = self.defs[s["ref"]]
            elif "resolveRef" in s:
                s = self.defs[s["resolveRef"]]
            elif "schema" in s and not any(k in s for k in KINDS[:-1]):
                s = s["schema"]
            else:
                break
        return s

    def _check(self, v, s, path, errs):
        if s in ("string", "path"):
            return isinstance(v, str) or errs.append(f"{path}: expected a string, got {v!r}")
        if s == "number":
            return (isinstance(v, (int, float)) and not isinstance(v, bool)) or errs.append(f"{path}: expected a number")
        if s == "boolean":
            return isinstance(v, bool) or errs.append(f"{path}: expected true/false, got {v!r}")
        if s == "object":
            return isinstance(v, dict) or errs.append(f"{path}: expected a mapping")
        if s == "any":
            return
        if s is None or s == "null":
            return v is None or errs.append(f"{path}: expected null")
        if not isinstance(s, dict):
            return v == s or errs.append(f"{path}: expected {s!r}, got {v!r}")
        kind = next((k for k in KINDS if k in s), None)
        if kind is None:
            raise ValueError(f"schema at {path} not understood: {list(s)}")
        body = s[kind]
        if kind in ("ref", "resolveRef"):
            return self._check(v, self.defs[body], path, errs)
        if kind == "schema":
            return self._check(v, body, path, errs)
        if kind in ("anyOf", "allOf"):
            opts = body["schemas"] if isinstance(body, dict) else body
            results = [self.check(v, o, path, []) for o in opts]
            ok = any(results) if kind == "anyOf" else all(results)
            if not ok:
                # report the errors of the closest alternative (the one with the fewest errors)
                trials = []
                for o in opts:
                    e = []
                    self._check(v, o, path, e)
                    trials.append(e)
                # an alternative of the value's own type explains best: rank type mismatches last
                rank = lambda e: (all(x.startswith(f"{path}: expected") for x in e), len(e))
                errs += min(trials, key=rank) if kind == "anyOf" else sum(trials, [])
            return
        if kind in ("string", "path", "number", "boolean", "null"):
            self._check(v, kind, path, errs)
            return
        if kind == "pattern":
            return isinstance(v, str) or errs.append(f"{path}: expected a string")
        if kind == "enum":
            values = body["values"] if isinstance(body, dict) else body
            return v in values or errs.append(f"{path}: {v!r} is not one of {values}")
        if kind == "arrayOf":
            inner = body["schema"] if isinstance(body, dict) and "schema" in body else body
            if not isinstance(v, list):
                return errs.append(f"{path}: expected a list")
            for i, x in enumerate(v):
                self._check(x, inner, f"{path}[{i}]", errs)
            return
        if kind == "maybeArrayOf":
            if isinstance(v, list):
                for i, x in enumerate(v):
                    self._check(x, body, f"{path}[{i}]", errs)
                return
            return self._check(v, body, path, errs)
        if kind == "record":
            props = body.get("properties", body) if isinstance(body, dict) else {}
            s = {"object": {"properties": props, "closed": True, "required": "all"}}
            kind, body = "object", s["object"]
        if kind == "object":
            body = body or {}
            if not isinstance(v, dict):
                return errs.append(f"{path}: expected a mapping, got {v!r}")
            props = self._props(s)
            extra = body.get("additionalProperties")
            for k, x in v.items():
                if k in props:
                    self._check(x, props[k], f"{path}.{k}", errs)
                elif extra not in (None, False):
                    self._check(x, extra, f"{path}.{k}", errs)
                elif body.get("closed") or extra is False:
                    errs.append(f"{path}: unknown key {k!r} (Quarto knows: {', '.join(sorted(props))})")
            req = list(props) if body.get("required") == "all" else body.get("required") or []
            for k in req:
                if k not in v:
                    errs.append(f"{path}: required key {k!r} is missing")

    def check_config(self, cfg: dict) -> list[str]:
        errs = []
        project = {"object": {"closed": True, "properties": {}}}
        for f in self.project:
            if f["name"] == "project":
                project = f["schema"]
        if "project" in cfg:
            self._check(cfg["project"], project, "project", errs)
        if "website" in cfg:
            self._check(cfg["website"], {"ref": "base-website"}, "website", errs)
        for fmt, opts in (cfg.get("format") or {}).items():
            if opts == "default":
                continue
            fields = {}
            for f in self.doc_fields:
                if self.applies(f, fmt):
                    fields[f["name"]] = f.get("schema", "any")
                    if f.get("alias"):
                        fields[f["alias"]] = f.get("schema", "any")
            if not fields:
                errs.append(f"format.{fmt}: unknown format")
                continue
            self._check(opts, {"object": {"closed": True, "properties": fields}}, f"format.{fmt}", errs)
        return errs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    folder = Path(argv[0]) / "src" / "resources" / "schema"
    if not (folder / "definitions.yml").exists():
        print(f"error: {folder} has no Quarto schema files (definitions.yml)", file=sys.stderr)
        return 2
    cfg = build_site.load_config()
    errs = Schema(folder).check_config(cfg)
    for e in errs:
        print("error:", e)
    print(f"checked project, website and format ({', '.join(cfg.get('format') or {})}) against {folder}: "
          f"{len(errs)} problem(s)")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
