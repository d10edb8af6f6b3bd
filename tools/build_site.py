#!/usr/bin/env python
"""Build the documentation website without Quarto: `python tools/build_site.py` -> `_docs/`.

The site is configured exactly as for `nbdev_docs` (which needs Quarto): `_quarto.yml` (nbs/_quarto.yml
links to it) with its metadata files `nbs/nbdev.yml` and `nbs/sidebar.yml`, plus `nbs/styles.css`.

Pipeline:
1. check the configuration: `_quarto.yml` and its metadata files are valid, every notebook in nbs/ is in
   the sidebar and the sidebar names no missing file (`--check` does only this and the README check);
2. fetch require.js, the ipywidgets HTML manager and MathJax 3 from the npm registry (`npm pack`, pinned
   versions and checksums) into the ignored cache `.docs_cache/` and copy them into `_docs/_static/`,
   with anywidget's front end from the installed anywidget package, so that pages work offline;
3. in `--jobs` worker processes: execute each source notebook with nbclient (widget state stored; cells
   flagged with a `tst_flags` flag such as `#| slow`, and `#| eval: false` cells, are not run and keep
   their saved outputs, as under `nbdev_test`), then apply nbdev's own docs processors (`FilterDefaults`,
   what `nbdev_proc_nbs` does: front matter, hidden cells removed, `show_doc` for every exported name,
   links to the API reference);
4. render each notebook with nbconvert's HTMLExporter and the template in tools/docsite/ (images and
   widget state embedded), add the sidebar and a table of contents, make links relative, and check that
   no page is empty and no internal link is dead.

`python tools/build_site.py --readme` writes README.md from nbs/index.ipynb (what `nbdev_readme` does
with Quarto); `--check` fails when README.md is out of date.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html as htmllib
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from configparser import ConfigParser
from pathlib import Path, PurePosixPath
from posixpath import dirname as posix_dirname, join as posix_join, normpath as posix_normpath, relpath as posix_relpath
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
TEMPLATE = TOOLS / "docsite"
CACHE = ROOT / ".docs_cache"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
BUILD_INFO = ".build-info.json"

# npm packages shipped with the site: (name, version, sha512 integrity of the registry tarball)
NPM_PACKAGES = [
    ("requirejs", "2.3.8",
     "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="),
    ("@jupyter-widgets/html-manager", "1.0.15",   # 1.x is the manager for ipywidgets 8
     "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="),
    ("mathjax", "3.2.2",
     "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="),
]
# (destination under _static/, source under the cache's package folders; a glob or one file)
NPM_ASSETS = [
    ("require.js", "requirejs/require.js"),
    ("widgets/", "@jupyter-widgets/html-manager/dist/embed-amd.js"),
    ("widgets/", "@jupyter-widgets/html-manager/dist/*.woff2"),   # Font Awesome (the play button)
    ("widgets/", "@jupyter-widgets/html-manager/dist/*.woff"),
    ("widgets/", "@jupyter-widgets/html-manager/dist/*.ttf"),
    ("widgets/", "@jupyter-widgets/html-manager/dist/*.eot"),
    ("widgets/", "@jupyter-widgets/html-manager/dist/*.svg"),
    ("mathjax/tex-chtml.js", "mathjax/es5/tex-chtml.js"),
    ("mathjax/output/chtml/fonts/woff-v2/", "mathjax/es5/output/chtml/fonts/woff-v2/*"),
    ("mathjax/input/tex/extensions/", "mathjax/es5/input/tex/extensions/*"),
    ("mathjax/ui/", "mathjax/es5/ui/*"),
    ("mathjax/a11y/", "mathjax/es5/a11y/*"),
]


class SiteError(Exception):
    "A problem with the sources or the configuration; the message says what to fix."


# ---------------------------------------------------------------------------------------- configuration
def settings(root: Path = ROOT):
    "The `[DEFAULT]` section of settings.ini."
    ini = ConfigParser(delimiters=["="])
    ini.read(root / "settings.ini", encoding="utf-8")
    return ini["DEFAULT"]


def nbs_path(root: Path = ROOT) -> Path:
    return root / settings(root).get("nbs_path", "nbs")


def load_yaml(path: Path):
    import yaml
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SiteError(f"{path} is not valid YAML: {e}") from None


def _merge(a: dict, b: dict) -> dict:
    "Deep merge of `b` into a copy of `a` (maps merge, everything else is replaced), like Quarto's metadata-files."
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def sidebar_items(contents):
    "Every `href` (or plain file entry) in a sidebar `contents` list, depth first."
    for item in contents or []:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            if item.get("href"):
                yield item["href"]
            yield from sidebar_items(item.get("contents"))


def notebooks(nbs: Path) -> list[str]:
    "Every notebook under `nbs` (posix paths relative to it), skipping folders/files starting with `_` or `.`."
    return sorted(p.relative_to(nbs).as_posix() for p in nbs.rglob("*.ipynb")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(nbs).parts))


def load_config(root: Path = ROOT) -> dict:
    "`_quarto.yml` merged with its `metadata-files`, as Quarto reads it from the notebooks folder."
    nbs = nbs_path(root)
    q = nbs / "_quarto.yml"
    if not q.exists():
        raise SiteError(f"{q} is missing (it should be a symbolic link to ../_quarto.yml)")
    cfg = load_yaml(q)
    for name in cfg.get("metadata-files") or []:
        if not (nbs / name).exists():
            raise SiteError(f"_quarto.yml: metadata file {name} does not exist in {nbs}")
        cfg = _merge(cfg, load_yaml(nbs / name))
    return cfg


def check_config(root: Path = ROOT) -> list[str]:
    "Problems with the site configuration (empty list when fine). Quarto itself is not needed."
    errs = []
    nbs = nbs_path(root)
    top, link = root / "_quarto.yml", nbs / "_quarto.yml"
    if not top.is_file() or top.is_symlink():
        errs.append("_quarto.yml must be a real file at the top of the repository")
    if not link.is_symlink() or link.resolve() != top.resolve():
        errs.append(f"{link.relative_to(root)} must be a symbolic link to ../_quarto.yml (one real file)")
    try:
        cfg = load_config(root)
    except SiteError as e:
        return errs + [str(e)]
    ini = settings(root)
    if (cfg.get("project") or {}).get("type") != "website":
        errs.append("project.type must be 'website'")
    out_dir = (cfg.get("project") or {}).get("output-dir")
    if out_dir != Path(ini.get("doc_path", "_docs")).name:
        errs.append(f"project.output-dir is {out_dir!r}; settings.ini doc_path says {ini.get('doc_path')!r}")
    html = (cfg.get("format") or {}).get("html")
    if not isinstance(html, dict):
        errs.append("format.html is missing")
        html = {}
    css = html.get("css")
    for c in [css] if isinstance(css, str) else css or []:
        if not (nbs / c).exists():
            errs.append(f"format.html.css names {c}, which does not exist in {nbs.name}/")
    site = cfg.get("website") or {}
    for key in ("title", "site-url", "repo-url", "sidebar"):
        if not site.get(key):
            errs.append(f"website.{key} is missing")
    contents = (site.get("sidebar") or {}).get("contents")
    if not isinstance(contents, list) or not contents:
        errs.append("website.sidebar.contents must be a non-empty list (nbs/sidebar.yml)")
        contents = []
    listed = [f for f in sidebar_items(contents) if not urlsplit(f).scheme]
    for f in listed:
        if not (nbs / f).is_file():
            errs.append(f"sidebar.yml lists {f}, which does not exist in {nbs.name}/")
    for f in sorted({f for f in listed if listed.count(f) > 1}):
        errs.append(f"sidebar.yml lists {f} more than once")
    for f in notebooks(nbs):
        if f not in listed:
            errs.append(f"{nbs.name}/{f} is not in {nbs.name}/sidebar.yml: add it to its section "
                        "(or run python tools/build_site.py --sidebar)")
    if ini.get("custom_sidebar", "False").lower() not in ("true", "1", "yes"):
        errs.append("settings.ini custom_sidebar must be True, or nbdev_docs overwrites nbs/sidebar.yml")
    return errs


def update_sidebar(root: Path = ROOT) -> list[str]:
    "Add notebooks missing from sidebar.yml to the section of their folder; drop entries for missing files."
    import yaml
    nbs = nbs_path(root)
    path = nbs / "sidebar.yml"
    doc = load_yaml(path) if path.exists() else {}
    contents = doc.setdefault("website", {}).setdefault("sidebar", {}).setdefault("contents", [])
    changes = []

    def prune(items):
        keep = []
        for it in items:
            href = it if isinstance(it, str) else it.get("href")
            if href and not urlsplit(href).scheme and not (nbs / href).is_file():
                changes.append(f"removed {href}")
                if isinstance(it, dict) and it.get("section"):
                    it.pop("href")
                else:
                    continue
            if isinstance(it, dict) and "contents" in it:
                it["contents"] = prune(it["contents"] or [])
            keep.append(it)
        return keep
    contents[:] = prune(contents)
    listed = set(sidebar_items(contents))
    sections = {str(it["section"]).lower(): it for it in contents if isinstance(it, dict) and "section" in it}
    for f in notebooks(nbs):
        if f in listed:
            continue
        folder = f.split("/")[0] if "/" in f else "home"
        sec = sections.get(folder)
        if sec is None:
            name = folder.upper() if len(folder) <= 3 else folder.capitalize()     # nca -> NCA, tutorials -> Tutorials
            sec = sections[folder] = {"section": name, "contents": []}
            contents.append(sec)
        items = sec.get("contents") or []
        at = next((i for i, x in enumerate(items) if isinstance(x, str) and x > f), len(items))
        sec["contents"] = items[:at] + [f] + items[at:]       # in name order, manual order left alone
        changes.append(f"added {f} to section {sec['section']}")
    if changes:
        class Indented(yaml.SafeDumper):           # lists indented under their key, as in the file
            def increase_indent(self, flow=False, indentless=False):
                return super().increase_indent(flow, False)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        header = "".join(line for line in text.splitlines(True)[:next(
            (i for i, line in enumerate(text.splitlines()) if not line.startswith("#")), 0)])
        path.write_text(header + yaml.dump(doc, Dumper=Indented, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return changes


# ---------------------------------------------------------------------------------------- page names
def out_name(rel: str, fm: dict | None = None) -> str:
    "The HTML page for a notebook, as nbdev + Quarto name it: `core/00_operators.ipynb` -> `core/operators.html`."
    p = PurePosixPath(rel)
    if fm and fm.get("output-file"):
        return str(p.with_name(fm["output-file"]))
    return str(p.with_name(re.sub(r"^\d+[a-zA-Z0-9]*_", "", p.name.lower())).with_suffix(".html"))


def slug(text: str) -> str:
    "Heading ids as pandoc/Quarto write them: lower case, spaces to dashes, punctuation dropped."
    return re.sub(r"[^\w\-.]", "", text.strip().lower().replace(" ", "-"))


# ---------------------------------------------------------------------------------------- npm assets
def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_npm(cache: Path = CACHE) -> Path:
    "Unpack the pinned npm packages into `cache/npm/<name>` (downloaded with `npm pack` once); return that folder."
    dest = cache / "npm"
    stamp = dest / ".stamp"
    want = json.dumps(NPM_PACKAGES)
    if stamp.exists() and stamp.read_text() == want:
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise SiteError("npm is not installed; the site build fetches require.js, the widget manager and MathJax "
                        "with it (Debian: apt-get install -y npm)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tgz = cache / "tarballs"
    tgz.mkdir(parents=True, exist_ok=True)
    for name, version, integrity in NPM_PACKAGES:
        fname = tgz / (name.lstrip("@").replace("/", "-") + f"-{version}.tgz")
        if not fname.exists() or _integrity(fname) != integrity:
            r = subprocess.run([npm, "pack", "--silent", "--pack-destination", str(tgz), f"{name}@{version}"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SiteError(f"npm pack {name}@{version} failed:\n{r.stderr.strip()}")
        if _integrity(fname) != integrity:
            raise SiteError(f"{fname.name} from the npm registry does not match its pinned checksum")
        with tarfile.open(fname) as tf:
            target = dest / name
            for m in tf.getmembers():
                if not m.isfile():
                    continue
                rel = PurePosixPath(m.name)
                if rel.parts[0] != "package" or ".." in rel.parts:
                    raise SiteError(f"unexpected path {m.name} in {fname.name}")
                out = target.joinpath(*rel.parts[1:])
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tf.extractfile(m).read())
    stamp.write_text(want)
    return dest


def anywidget_js() -> Path:
    """anywidget's front end for the widget manager of the pages: the AMD module that the installed anywidget
    package ships for Jupyter (its version matches the Python side). Widgets built on anywidget (the live
    models of dpattern.inspect.live) carry their own ES module in the widget state; this loads it."""
    from jupyter_core.paths import jupyter_path
    for d in [Path(sys.prefix) / "share" / "jupyter", *map(Path, jupyter_path())]:
        f = d / "nbextensions" / "anywidget" / "index.js"
        if f.is_file():
            return f
    raise SiteError("anywidget's front end (share/jupyter/nbextensions/anywidget/index.js) was not found: "
                    "install the package's requirements (pip install -e '.[dev]')")


def copy_assets(out: Path, nbs: Path, cfg: dict) -> list[str]:
    "Copy the JavaScript, fonts and CSS that pages load into `out/_static` (and the site CSS); return the extra CSS."
    npm = fetch_npm()
    static = out / "_static"
    for dest, src in NPM_ASSETS:
        files = sorted(npm.glob(src)) if "*" in src else [npm / src]
        if not files or not files[0].exists():
            raise SiteError(f"npm asset {src} is missing from {npm}; delete {CACHE} and build again")
        for f in files:
            if f.is_dir():
                shutil.copytree(f, static / dest / f.name, dirs_exist_ok=True)
                continue
            d = static / dest / f.name if dest.endswith("/") else static / dest
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, d)
    from nbconvert.exporters.templateexporter import TemplateExporter
    lab = next(Path(p) / "lab" / "static" for p in TemplateExporter().template_paths
               if (Path(p) / "lab" / "static" / "index.css").exists())
    (static / "lab").mkdir(parents=True, exist_ok=True)
    for n in ("index.css", "theme-light.css"):
        shutil.copy2(lab / n, static / "lab" / n)
    for f in (TEMPLATE / "static").iterdir():
        shutil.copy2(f, static / f.name)
    shutil.copy2(anywidget_js(), static / "widgets" / "anywidget.js")
    css = ((cfg.get("format") or {}).get("html") or {}).get("css")
    extra = [css] if isinstance(css, str) else list(css or [])
    for c in extra:
        (out / c).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nbs / c, out / c)
    return extra


# ---------------------------------------------------------------------------------------- execution (workers)
_re_opt = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def split_options(src: str):
    "Leading Quarto `#| key: value` lines -> (options, the rest of the source)."
    import yaml
    lines, opts, i = src.splitlines(), {}, 0
    while i < len(lines):
        m = _re_opt.match(lines[i])
        if not m:
            if re.match(r"^\s*#\s*\|", lines[i]):      # a bare nbdev directive that survived processing
                i += 1
                continue
            break
        try:
            v = yaml.safe_load(m.group(2)) if m.group(2) else True
        except yaml.YAMLError:
            v = m.group(2)
        opts[m.group(1)] = v
        i += 1
    return opts, "\n".join(lines[i:])


def _tag(cell, tag):
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def _skipped(cell, flags: set) -> bool:
    "Does `nbdev_test` skip this cell (a `tst_flags` flag such as `#| slow`, or `#| eval: false`)?"
    from nbdev.process import extract_directives
    d = extract_directives(cell, remove=False)
    return bool(flags & d.keys()) or d.get("eval:", [""])[0].lower() == "false"


def process_notebook(job):
    "Worker: execute one source notebook, then run nbdev's docs processors on it; returns JSON."
    src, root, execute, timeout = job
    import nbformat
    os.chdir(root)                                   # nbdev's get_config() starts from the working directory
    os.environ["PYTHONPATH"] = os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    t0 = time.time()
    nb = nbformat.read(src, as_version=4)
    # like nbdev_test: `skip_exec: true` front matter or a `.notest` file beside it -> saved outputs
    fm_skip = (Path(src).parent / ".notest").exists()
    if nb.cells and nb.cells[0].cell_type == "raw":
        fm_skip = fm_skip or "skip_exec: true" in nb.cells[0].source
    if execute and not fm_skip:
        from nbclient import NotebookClient
        flags = set(settings(Path(root)).get("tst_flags", "").split())
        for c in nb.cells:
            if c.cell_type == "code" and _skipped(c, flags):
                _tag(c, "skip-execution")
                for o in c.get("outputs", []):      # saved widget views would point at models that do not exist
                    o.get("data", {}).pop(WIDGET_VIEW, None)
            elif c.cell_type == "code":
                opts, _ = split_options(c.source)
                if opts.get("error") is True:
                    _tag(c, "raises-exception")
        from nbclient.exceptions import CellExecutionError
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                           extra_arguments=["--IPKernelApp.log_level=ERROR"],   # no start-up chatter
                           resources={"metadata": {"path": str(Path(src).parent)}}).execute()
        except CellExecutionError as e:
            raise SiteError(f"{Path(src).relative_to(Path(root)).as_posix()}: a cell failed:\n{e}") from None
        for c in nb.cells:
            tags = c.metadata.get("tags", [])
            for t in ("skip-execution", "raises-exception"):
                if t in tags:
                    tags.remove(t)
            if "tags" in c.metadata and not tags:
                del c.metadata["tags"]
    t1 = time.time()
    # nbdev's docs processors, as `nbdev_proc_nbs` runs them, on the executed notebook
    from execnb.nbio import dict2nb, nb2dict
    from nbdev.processors import FilterDefaults
    # execnb's nb2dict calls .splitlines() on every key named 'source', which breaks jslink widget state
    wstate = nb.metadata.pop("widgets", None)
    d = dict2nb(json.loads(nbformat.writes(nb)))
    d.path_ = str(src)
    os.environ["IN_TEST"] = "1"
    rel = Path(src).relative_to(Path(root)).as_posix()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            FilterDefaults()(d)
    except Exception as e:
        raise SiteError(f"{rel}: nbdev's docs processors failed (nbdev_docs would fail the same way). They "
                        "execute, in one shell, every exported cell, show_doc cell and every cell with an import "
                        f"in it, and no other cell; a cell that mixes imports with code that needs other cells "
                        f"breaks. Put imports in cells of their own.\n{e}") from None
    finally:
        os.environ.pop("IN_TEST", None)
    mixed = [str(w.message).split("---")[1].strip() for w in caught if "containing imports and other code" in str(w.message)]
    if mixed:
        raise SiteError(f"{rel}: cells mix imports with other code, so nbdev's docs processors (nbdev_docs too) "
                        "execute them once more at docs time; put the imports in a cell of their own:\n"
                        + "\n".join("  > " + m.splitlines()[0] + " ..." for m in mixed))
    d.metadata.pop("widgets", None)                 # the in-process shell's own (empty) widget state
    res = nb2dict(d)
    if wstate:
        res["metadata"]["widgets"] = wstate
    return str(src), json.dumps(res), t1 - t0, time.time() - t1


# ---------------------------------------------------------------------------------------- rendering
_re_fence_open = re.compile(r"^:::+\s*\{([^}]*)\}\s*$|^:::+\s*([\w-]+)\s*$")


def fenced_divs(md: str) -> str:
    "Quarto fenced divs (`::: {.callout-note}`) -> `<div>` blocks, so the markdown inside still renders."
    out = []
    for line in md.splitlines():
        s = line.strip()
        m = _re_fence_open.match(s)
        if m:
            attrs = (m.group(1) or "." + m.group(2)).split()
            classes = [a[1:] for a in attrs if a.startswith(".")]
            if any(c.startswith("callout") for c in classes):
                classes.insert(0, "callout")
            out += ["", f'<div class="{" ".join(classes)}">', ""]
        elif re.fullmatch(r":::+", s):
            out += ["", "</div>", ""]
        else:
            out.append(line)
    return "\n".join(out)


def widget_ids(obj) -> set[str]:
    "Model ids referenced (`IPY_MODEL_<id>`) anywhere inside a widget state."
    found = set()
    if isinstance(obj, str):
        if obj.startswith("IPY_MODEL_"):
            found.add(obj[len("IPY_MODEL_"):])
    elif isinstance(obj, dict):
        for v in obj.values():
            found |= widget_ids(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= widget_ids(v)
    return found


def prune_widget_state(nb) -> int:
    "Keep only the widget models that displayed widgets need (and links between them); return the bytes kept."
    state = (nb.metadata.get("widgets") or {}).get(WIDGET_STATE, {}).get("state") or {}
    shown = {o["data"][WIDGET_VIEW]["model_id"] for c in nb.cells for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})}
    keep, todo = set(), [m for m in shown if m in state]
    while True:
        while todo:
            m = todo.pop()
            if m in keep:
                continue
            keep.add(m)
            todo += [r for r in widget_ids(state[m].get("state")) if r in state]
        links = [m for m, v in state.items() if m not in keep and v.get("model_name") in ("LinkModel", "DirectionalLinkModel")
                 and widget_ids([v["state"].get("source"), v["state"].get("target")]) <= keep]
        if not links:
            break
        todo += links
    if not keep:
        nb.metadata.pop("widgets", None)
        return 0
    nb.metadata["widgets"][WIDGET_STATE]["state"] = {m: state[m] for m in state if m in keep}
    return len(json.dumps(nb.metadata["widgets"]))


_re_attr_link = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}")


def attr_links(md: str) -> str:
    "Pandoc links with attributes, `[source](url){target=\"_blank\" style=\"...\"}` (nbdev's show_doc), -> HTML."
    def fix(m):
        attrs = " ".join(f'{k}="{htmllib.escape(v)}"' for k, v in re.findall(r'([\w-]+)="([^"]*)"', m.group(3)))
        return f'<a href="{htmllib.escape(m.group(2))}" {attrs}>{m.group(1)}</a>'
    return _re_attr_link.sub(fix, md)


def prepare(nb) -> dict:
    "Apply the Quarto cell options that nbdev leaves for Quarto; return the page's front matter."
    import yaml
    fm, cells = {}, []
    for c in nb.cells:
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"):
            fm.update(yaml.safe_load(c.source.strip().strip("-")) or {})
            continue
        if c.cell_type == "markdown":
            if c.source.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"):
                continue
            c.source = attr_links(fenced_divs(c.source))
        if c.cell_type == "code":
            for o in c.get("outputs", []):
                if "text/markdown" in o.get("data", {}):
                    o["data"]["text/markdown"] = attr_links(o["data"]["text/markdown"])
            opts, c.source = split_options(c.source)
            if opts.get("include") is False:
                continue
            if opts.get("echo") is False:
                _tag(c, "remove_input")
            if opts.get("output") is False:
                _tag(c, "remove_output")
            fold = opts.get("code-fold")
            if fold:
                c.metadata["code_fold"] = "show" if fold == "show" else "hide"
                c.metadata["code_summary"] = str(opts.get("code-summary", "Code"))
            if not c.source.strip() and not c.get("outputs"):
                continue
        cells.append(c)
    nb.cells = cells
    prune_widget_state(nb)
    return fm


def sidebar_html(contents, cur_out: str, pages: dict) -> str:
    here = posix_dirname(cur_out) or "."

    def link(rel):
        return posix_relpath(pages[rel]["out"], here)

    def items(cs):
        h = ["<ul>"]
        for it in cs or []:
            if isinstance(it, str):
                it = {"href": it}
            href = it.get("href")
            if "section" in it:
                if href not in pages and not any(f in pages for f in sidebar_items(it.get("contents"))):
                    continue                    # a section waiting for its first page
                title = htmllib.escape(str(it["section"]))
                active = href in pages and pages[href]["out"] == cur_out
                head = (f'<a class="section-title{" active" if active else ""}" href="{link(href)}">{title}</a>'
                        if href in pages else f'<span class="section-title">{title}</span>')
                h.append(f'<li class="section">{head}{items(it.get("contents"))}</li>')
            elif href in pages:
                p = pages[href]
                act = ' class="active" aria-current="page"' if p["out"] == cur_out else ""
                h.append(f'<li><a{act} href="{link(href)}">{htmllib.escape(str(it.get("text") or p["title"]))}</a></li>')
            elif href:
                h.append(f'<li><a href="{htmllib.escape(href)}">{htmllib.escape(str(it.get("text") or href))}</a></li>')
        return "".join(h) + "</ul>"
    return items(contents)


_re_heading = re.compile(r'<h([23]) id="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


def toc_html(html: str) -> str:
    "An 'On this page' list of the h2/h3 headings of a rendered page."
    rows = []
    for level, hid, inner in _re_heading.findall(html):
        text = re.sub(r"<[^>]+>", "", re.sub(r'<a class="anchor-link".*?</a>', "", inner)).strip()
        if text:
            rows.append(f'<li class="toc-h{level}"><a href="#{hid}">{text}</a></li>')
    if len(rows) < 2:
        return ""
    return '<nav class="site-toc" aria-label="On this page"><h2>On this page</h2><ul>' + "".join(rows) + "</ul></nav>"


def rewrite_links(html: str, rel: str, cur_out: str, pages: dict, site_url: str, problems: list) -> str:
    "Quarto-style heading ids, and links to notebooks or to the site's own URL made relative to this page."
    html = re.sub(r'(<h[1-6] id=")([^"]+)(")', lambda m: m.group(1) + slug(m.group(2)) + m.group(3), html)
    html = re.sub(r'(class="anchor-link" href="#)([^"]+)(")', lambda m: m.group(1) + slug(m.group(2)) + m.group(3), html)
    by_out = {p["out"]: k for k, p in pages.items()}
    here = posix_dirname(cur_out) or "."

    def fix(m):
        url = htmllib.unescape(m.group(2))
        if site_url and url.startswith(site_url + "/"):       # nbdev's links to the API reference
            target, _, frag = url[len(site_url) + 1:].partition("#")
            target = target or "index.html"
            if target not in by_out:
                problems.append(f"{rel}: link to {url}, which is not a page of this site")
                return m.group(0)
            return f'{m.group(1)}{posix_relpath(target, here)}{"#" + frag if frag else ""}{m.group(3)} data-api-link'
        sp = urlsplit(url)
        if sp.scheme or url.startswith(("#", "data:", "mailto:")) or not sp.path.endswith((".ipynb", ".qmd", ".md")):
            return m.group(0)
        target = posix_normpath(posix_dirname(rel) + "/" + sp.path) if posix_dirname(rel) else posix_normpath(sp.path)
        if target not in pages:
            problems.append(f"{rel}: link to {url}, which is not a notebook in nbs/")
            return m.group(0)
        new = posix_relpath(pages[target]["out"], here)
        return f'{m.group(1)}{new}{"#" + slug(sp.fragment) if sp.fragment else ""}{m.group(3)}'
    return re.sub(r'(<a\s[^>]*?href=")([^"]+)(")', fix, html)


def check_anchors(html: str, cur: str, ids: dict, problems: list) -> str:
    """Links to `page.html#id` whose id does not exist: an error, except for nbdev's automatic API links
    (`Model.partition` -> `#model.partition` when only the class has a `show_doc`), which fall back to the
    enclosing name's anchor, or to the page."""
    here = posix_dirname(cur)

    def fix(m):
        href, api = htmllib.unescape(m.group(2)), m.group(4) is not None
        base, _, frag = href.partition("#")
        if urlsplit(href).scheme or not frag:
            return m.group(0)
        target = posix_normpath(posix_join(here, base)) if base else cur
        if target not in ids or frag in ids[target]:
            return m.group(0)
        if not api:
            problems.append(f"{cur}: link to {href}, but {target} has no element with id {frag!r}")
            return m.group(0)
        while "." in frag and frag not in ids[target]:
            frag = frag.rsplit(".", 1)[0]
        new = base + ("#" + frag if frag in ids[target] else "") or "#"
        return f"{m.group(1)}{new}{m.group(3)}"
    return re.sub(r'(<a\s[^>]*?href=")([^"]+)(")( data-api-link)?', fix, html)


_re_math = re.compile(r"\$[^$\n]+\$|\$\$|\\\(|\\\[|\\begin\{(equation|align)")


def has_math(nb) -> bool:
    for c in nb.cells:
        if c.cell_type == "markdown" and _re_math.search(c.source):
            return True
        for o in c.get("outputs", []):
            d = o.get("data", {})
            if "text/latex" in d or _re_math.search(str(d.get("text/markdown", ""))):
                return True
    return False


def _exporter():
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = ("remove_input",)
    c.TagRemovePreprocessor.remove_all_outputs_tags = ("remove_output",)
    c.HTMLExporter.preprocessors = ["nbconvert.preprocessors.TagRemovePreprocessor"]
    return HTMLExporter(config=c, extra_template_basedirs=[str(TOOLS)], template_name="docsite",
                        exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
                        anchor_link_text="¶")


def _text_length(html: str) -> int:
    body = html.split('<main', 1)[-1]
    body = re.sub(r"<script.*?</script>|<style.*?</style>|<header class=\"page-header\".*?</header>|"
                  r"<nav.*?</nav>|<footer.*?</footer>", "", body, flags=re.S)
    return len(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip())


def inputs_digest(root: Path = ROOT) -> str:
    "A hash of everything a build reads (notebooks, the package, the configuration, this tool)."
    h = hashlib.sha256()
    nbs = nbs_path(root)
    files = [root / "settings.ini", root / "_quarto.yml"]
    files += sorted(p for p in nbs.rglob("*") if p.is_file() and "_proc" not in p.parts and ".ipynb_checkpoints" not in p.parts)
    files += sorted((root / "dpattern").rglob("*.py")) + sorted(p for p in TOOLS.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def build(out: Path | None = None, jobs: int = 2, execute: bool = True, timeout: int = 600,
          root: Path = ROOT, log=print) -> dict:
    "Build the site into `out` (settings.ini doc_path by default); return a summary. Raises SiteError."
    t0 = time.time()
    ini = settings(root)
    nbs = nbs_path(root)
    out = Path(out or root / ini.get("doc_path", "_docs")).resolve()
    errs = check_config(root)
    if errs:
        raise SiteError("the site configuration has problems:\n  " + "\n  ".join(errs))
    cfg = load_config(root)
    contents = cfg["website"]["sidebar"]["contents"]
    site_url = str(cfg["website"].get("site-url", "")).rstrip("/")
    digest = inputs_digest(root)
    srcs = notebooks(nbs)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))   # written fully, then moved into place
    try:
        extra_css = copy_assets(tmp, nbs, cfg)
        t1 = time.time()
        results, timing = {}, {}
        # executed notebooks are cached by content (notebook, package, settings, processing code)
        import inspect
        common = hashlib.sha256("".join(inspect.getsource(f) for f in (process_notebook, split_options, _skipped)).encode())
        for f in [root / "settings.ini"] + sorted((root / "dpattern").rglob("*.py")):
            common.update(f.read_bytes())
        keys = {f: hashlib.sha256(common.digest() + (nbs / f).read_bytes() + bytes([execute])).hexdigest() for f in srcs}
        done = CACHE / "executed"
        for f in srcs:
            if (done / keys[f]).exists():
                results[f], timing[f] = (done / keys[f]).read_text(encoding="utf-8"), (0.0, 0.0)
                log(f"  {f}: unchanged, executed output taken from {CACHE.name}/")
        job_list = [(str(nbs / f), str(root), execute, timeout) for f in srcs if f not in results]
        # nbdev's shell replaces sys.modules['__main__'] in a worker: pickle the worker by its module name
        sys.path.insert(0, str(TOOLS))
        import build_site as mod
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(job_list) or 1)), mp_context=mp.get_context("spawn")) as ex:
            try:
                for src, js, t_exec, t_proc in ex.map(mod.process_notebook, job_list):
                    rel = Path(src).relative_to(nbs).as_posix()
                    results[rel], timing[rel] = js, (t_exec, t_proc)
                    done.mkdir(parents=True, exist_ok=True)
                    (done / keys[rel]).write_text(js, encoding="utf-8")
                    log(f"  {rel}: executed in {t_exec:.1f}s, nbdev processors {t_proc:.1f}s")
            except mod.SiteError as e:                # the worker's class: this module imported by name
                ex.shutdown(wait=True, cancel_futures=True)
                raise SiteError(str(e)) from None
        t2 = time.time()
        import nbformat
        exp = _exporter()
        prepared, pages = {}, {}
        for rel in srcs:
            nb = nbformat.reads(results[rel], as_version=4)
            fm = prepare(nb)
            prepared[rel] = (nb, fm)
            pages[rel] = {"out": out_name(rel, fm), "title": fm.get("title") or PurePosixPath(rel).stem}
        problems, sizes, rendered = [], {}, {}
        title = str(cfg["website"].get("title") or ini.get("title", ""))
        for rel, (nb, fm) in prepared.items():
            cur = pages[rel]["out"]
            root_rel = "../" * cur.count("/")
            exp.require_js_url = root_rel + "_static/require.js"
            exp.widget_renderer_url = root_rel + "_static/widgets/embed-amd.js"
            exp.mathjax_url = root_rel + "_static/mathjax/tex-chtml.js"
            site = dict(root=root_rel, title=title, fm=fm, has_math=has_math(nb), has_widgets="widgets" in nb.metadata,
                        sidebar_html=sidebar_html(contents, cur, pages), extra_css=extra_css,
                        repo_url=cfg["website"].get("repo-url", ""), source=f"nbs/{rel}",
                        page_title=pages[rel]["title"] if rel != "index.ipynb" else title)
            html, _ = exp.from_notebook_node(nb, resources={"site": site, "metadata": {
                "name": site["page_title"], "path": str(nbs / Path(rel).parent)}})
            html = rewrite_links(html, rel, cur, pages, site_url, problems)
            html = html.replace("<!--SITE-TOC-->", toc_html(html))
            if _text_length(html) < 200:
                problems.append(f"{rel}: the page is (nearly) empty")
            rendered[cur] = html
        ids = {cur: set(re.findall(r'\sid="([^"]+)"', html)) for cur, html in rendered.items()}
        for cur, html in rendered.items():
            html = check_anchors(html, cur, ids, problems)
            dst = tmp / cur
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(html, encoding="utf-8")
            sizes[cur] = len(html.encode())
        if problems:
            raise SiteError("the pages have problems:\n  " + "\n  ".join(problems))
        (tmp / ".nojekyll").touch()
        info = {"digest": digest, "pages": {pages[r]["out"]: f"nbs/{r}" for r in srcs}, "sizes": sizes,
                "executed": execute, "timing": {r: [round(a, 1), round(b, 1)] for r, (a, b) in timing.items()}}
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    t3 = time.time()
    for page, size in sorted(sizes.items()):
        log(f"  wrote {page} ({size / 1e3:.0f} kB)")
    log(f"built {len(srcs)} pages into {out} in {t3 - t0:.1f}s (assets {t1 - t0:.1f}s, "
        f"execute + nbdev {t2 - t1:.1f}s with {jobs} workers, render {t3 - t2:.1f}s)")
    return info


def is_fresh(out: Path | None = None, root: Path = ROOT) -> bool:
    "Was `out` built, with executed notebooks, from exactly the current sources?"
    out = Path(out or root / settings(root).get("doc_path", "_docs"))
    try:
        info = json.loads((out / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return False
    return info.get("executed") and info.get("digest") == inputs_digest(root)


# ---------------------------------------------------------------------------------------- README
def readme_text(root: Path = ROOT) -> str:
    "README.md as generated from the readme notebook (settings.ini readme_nb), from its saved outputs."
    import nbformat
    ini = settings(root)
    nbs = nbs_path(root)
    src = nbs / ini.get("readme_nb", "index.ipynb")
    if not src.exists():
        raise SiteError(f"{src} does not exist")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        _, js, _, _ = process_notebook((str(src), str(root), False, 600))
    finally:
        os.chdir(cwd)
    nb = nbformat.reads(js, as_version=4)
    fm = prepare(nb)
    rel = src.relative_to(root).as_posix()
    parts = [f"# {fm.get('title', ini.get('title', ''))}",
             f"<!-- WARNING: THIS FILE WAS AUTOGENERATED from {rel}! DO NOT EDIT! "
             "Edit the notebook, then run: python tools/build_site.py --readme -->"]
    if fm.get("description"):
        parts.append(f"> {fm['description']}")
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            parts.append(c.source.strip())
        elif c.cell_type == "raw":
            continue
        elif c.cell_type == "code":
            if "remove_input" not in c.metadata.get("tags", []) and c.source.strip():
                parts.append(f"```python\n{c.source.strip()}\n```")
            if "remove_output" in c.metadata.get("tags", []):
                continue
            for o in c.get("outputs", []):
                if o.output_type == "stream":
                    parts.append(f"```\n{o.text.rstrip()}\n```")
                elif o.output_type in ("execute_result", "display_data"):
                    d = o.get("data", {})
                    if "text/markdown" in d:
                        parts.append(d["text/markdown"].strip())
                    elif any(k.startswith("image/") for k in d):
                        raise SiteError(f"{rel} cell {i}: README.md cannot show an image output; "
                                        "use a markdown image (![...](path)) instead")
                    elif "text/plain" in d:
                        parts.append(f"```\n{d['text/plain'].rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------- command line
def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the documentation website into _docs/ without Quarto "
                                             "(or write/check README.md).")
    ap.add_argument("--out", type=Path, help="output folder (default: settings.ini doc_path, _docs)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="notebooks executed in parallel (default 2)")
    ap.add_argument("--no-execute", action="store_true", help="use the notebooks' saved outputs (quick look only)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds allowed per notebook cell")
    ap.add_argument("--if-stale", action="store_true", help="do nothing when the output is fresh")
    ap.add_argument("--readme", action="store_true", help="write README.md from the readme notebook, then stop")
    ap.add_argument("--sidebar", action="store_true", help="add notebooks missing from nbs/sidebar.yml, then stop")
    ap.add_argument("--check", action="store_true", help="check the configuration and README.md, build nothing")
    a = ap.parse_args(argv)
    try:
        if a.sidebar:
            changes = update_sidebar()
            print("\n".join(changes) if changes else "sidebar.yml already lists every notebook")
            return 0
        if a.readme:
            (ROOT / "README.md").write_text(readme_text(), encoding="utf-8")
            print(f"wrote {ROOT / 'README.md'}")
            return 0
        if a.check:
            errs = check_config()
            if (ROOT / "README.md").read_text(encoding="utf-8") != readme_text():
                errs.append("README.md is out of date: run python tools/build_site.py --readme")
            for e in errs:
                print("error:", e, file=sys.stderr)
            print("configuration and README.md are fine" if not errs else f"{len(errs)} problem(s)")
            return 1 if errs else 0
        if a.if_stale and not a.no_execute and is_fresh(a.out):
            print("the site is up to date")
            return 0
        build(a.out, jobs=a.jobs, execute=not a.no_execute, timeout=a.timeout)
        return 0
    except SiteError as e:
        print(f"build_site: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
