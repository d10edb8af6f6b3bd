"""The docs configuration, checked without Quarto and without a browser (quick).

`_quarto.yml` (+ nbs/nbdev.yml, nbs/sidebar.yml) must stay valid for `nbdev_docs` where Quarto exists
and must drive tools/build_site.py here. The keys used are checked against names Quarto's schema
defines; tools/check_quarto_schema.py validates the whole configuration against a checkout of
quarto-cli's schema files (see its docstring).
"""
import shutil
import sys

import nbformat
import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402
import long_cells  # noqa: E402

# Keys that Quarto's schema (quarto-cli src/resources/schema: project.yml, definitions.yml base-website,
# document-*.yml) defines, for the parts of the configuration we use. A key missing here may still be
# valid: check it with tools/check_quarto_schema.py, then add it.
QUARTO_PROJECT_KEYS = {"title", "type", "render", "execute-dir", "output-dir", "lib-dir", "resources", "preview",
                       "pre-render", "post-render", "detect", "brand"}
QUARTO_WEBSITE_KEYS = {"title", "description", "favicon", "site-url", "site-path", "repo-url", "repo-link-target",
                       "repo-link-rel", "repo-subdir", "repo-branch", "issue-url", "repo-actions", "reader-mode",
                       "llms-txt", "google-analytics", "plausible-analytics", "announcement", "cookie-consent",
                       "search", "navbar", "sidebar", "body-header", "body-footer", "margin-header", "margin-footer",
                       "page-navigation", "back-to-top-navigation", "bread-crumbs", "page-footer", "image",
                       "image-alt", "comments", "open-graph", "twitter-card", "other-links", "code-links", "drafts",
                       "draft-mode"}
QUARTO_HTML_KEYS = {"theme", "css", "toc", "toc-depth", "toc-location", "toc-title", "keep-md", "code-fold",
                    "code-summary", "code-tools", "code-copy", "highlight-style", "page-layout", "grid",
                    "number-sections", "html-math-method", "smooth-scroll", "link-external-icon", "fig-align"}
QUARTO_NAVBAR_KEYS = {"title", "logo", "logo-alt", "logo-href", "background", "foreground", "search", "pinned",
                      "collapse", "collapse-below", "left", "right", "toggle-position", "tools-collapse"}
QUARTO_SIDEBAR_KEYS = {"id", "title", "logo", "logo-alt", "logo-href", "search", "tools", "contents", "style",
                       "type", "background", "foreground", "border", "alignment", "collapse-level", "pinned",
                       "header", "footer"}


def test_quarto_configuration_is_valid():
    assert build_site.check_config() == []


def test_one_real_quarto_file():
    assert (ROOT / "_quarto.yml").is_file() and not (ROOT / "_quarto.yml").is_symlink()
    link = ROOT / "nbs" / "_quarto.yml"
    assert link.is_symlink() and link.resolve() == (ROOT / "_quarto.yml").resolve()


def test_quarto_keys_are_known_to_quarto():
    cfg = build_site.load_config()
    assert set(cfg) <= {"project", "format", "website", "metadata-files"}, set(cfg)
    assert set(cfg["project"]) <= QUARTO_PROJECT_KEYS
    assert set(cfg["website"]) <= QUARTO_WEBSITE_KEYS, set(cfg["website"]) - QUARTO_WEBSITE_KEYS
    assert set(cfg["format"]["html"]) <= QUARTO_HTML_KEYS, set(cfg["format"]["html"]) - QUARTO_HTML_KEYS
    assert set(cfg["format"]) <= {"html", "commonmark", "gfm"}
    assert set(cfg["website"]["navbar"]) <= QUARTO_NAVBAR_KEYS
    assert set(cfg["website"]["sidebar"]) <= QUARTO_SIDEBAR_KEYS
    assert cfg["website"]["sidebar"]["style"] in ("docked", "floating")
    assert set(cfg["website"]["repo-actions"]) <= {"none", "edit", "source", "issue"}
    for item in cfg["website"]["sidebar"]["contents"]:
        assert isinstance(item, str) or set(item) <= {"section", "contents", "href", "text"}, item
    sections = [it["section"] for it in cfg["website"]["sidebar"]["contents"] if isinstance(it, dict) and "section" in it]
    assert sections == ["Core", "NCA", "PDE", "ABM", "Inspect", "Tutorials"]


def test_nbdev_yml_is_what_nbdev_writes():
    "nbdev_docs rewrites nbs/nbdev.yml from settings.ini; the committed copy must match what it writes."
    from nbdev.quarto import _nbdev_yml
    ini = build_site.settings()
    vals = {k: ini[k] for k in ("title", "description", "branch", "git_url", "doc_host", "doc_baseurl")}
    vals["doc_path"] = ini["doc_path"]
    assert (ROOT / "nbs" / "nbdev.yml").read_text() == _nbdev_yml.format(**vals)


def test_readme_is_generated_from_index():
    expected = build_site.readme_text()
    assert (ROOT / "README.md").read_text(encoding="utf-8") == expected, \
        "README.md is out of date: run python tools/build_site.py --readme"
    assert 'pip install -e ".[dev]" && python tools/build_site.py' in expected   # the site build command


def test_api_links_point_at_pages_that_are_built():
    "nbdev's index of exported names links each name to a page; every such page must be one the build makes."
    from dpattern._modidx import d
    pages = {build_site.out_name(f) for f in build_site.notebooks(build_site.nbs_path())}
    linked = {url.partition("#")[0] for mod in d["syms"].values() for url, _ in mod.values()}
    assert linked and linked <= pages, linked - pages


def test_out_names_follow_nbdev():
    assert build_site.out_name("core/00_operators.ipynb") == "core/operators.html"
    assert build_site.out_name("index.ipynb") == "index.html"
    assert build_site.out_name("tutorials/01a_Grow.ipynb") == "tutorials/grow.html"
    assert build_site.out_name("nca/02_x.ipynb", {"output-file": "custom.html"}) == "nca/custom.html"


@pytest.fixture
def project(tmp_path):
    "A copy of the docs configuration with two empty notebooks."
    for f in ("settings.ini", "_quarto.yml"):
        shutil.copy(ROOT / f, tmp_path / f)
    nbs = tmp_path / "nbs"
    (nbs / "core").mkdir(parents=True)
    for f in ("nbdev.yml", "styles.css"):
        shutil.copy(ROOT / "nbs" / f, nbs / f)
    (nbs / "_quarto.yml").symlink_to("../_quarto.yml")
    for f in ("index.ipynb", "core/00_operators.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(), nbs / f)
    sidebar = {"website": {"sidebar": {"contents": [{"text": "Home", "href": "index.ipynb"},
                                                    {"section": "Core", "contents": ["core/00_operators.ipynb"]},
                                                    {"section": "NCA", "contents": []}]}}}
    (nbs / "sidebar.yml").write_text(yaml.safe_dump(sidebar))
    return tmp_path


def test_sidebar_must_list_every_notebook_and_only_existing_ones(project):
    assert build_site.check_config(project) == []
    nbs = project / "nbs"
    (nbs / "nca").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), nbs / "nca" / "00_model.ipynb")
    (nbs / "core" / "00_operators.ipynb").rename(nbs / "core" / "00_ops.ipynb")
    errs = build_site.check_config(project)
    assert any("nbs/nca/00_model.ipynb is not in nbs/sidebar.yml" in e for e in errs), errs
    assert any("core/00_ops.ipynb is not in" in e for e in errs), errs
    assert any("lists core/00_operators.ipynb, which does not exist" in e for e in errs), errs
    changes = build_site.update_sidebar(project)
    assert len(changes) == 3, changes
    assert build_site.check_config(project) == []
    contents = yaml.safe_load((nbs / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    assert contents[2] == {"section": "NCA", "contents": ["nca/00_model.ipynb"]}   # into the existing section
    assert contents[1] == {"section": "Core", "contents": ["core/00_ops.ipynb"]}


def test_config_errors_are_reported(project):
    q = project / "_quarto.yml"
    cfg = yaml.safe_load(q.read_text())
    cfg["format"]["html"]["css"] = "missing.css"
    cfg["project"]["type"] = "book"
    q.write_text(yaml.safe_dump(cfg))
    (project / "nbs" / "nbdev.yml").write_text("project:\n  output-dir: _site\n")
    errs = "\n".join(build_site.check_config(project))
    for part in ("project.type must be 'website'", "missing.css", "output-dir is '_site'", "website.title is missing"):
        assert part in errs, errs


def test_prune_widget_state_keeps_what_displayed_widgets_need():
    mime = build_site.WIDGET_STATE
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_img", "IPY_MODEL_slider"]}},
        "img": {"model_name": "ImageModel", "state": {"layout": "IPY_MODEL_lay"}},
        "lay": {"model_name": "LayoutModel", "state": {}},
        "slider": {"model_name": "IntSliderModel", "state": {}},
        "link": {"model_name": "LinkModel", "state": {"source": ["IPY_MODEL_slider", "value"],
                                                      "target": ["IPY_MODEL_box", "selected_index"]}},
        "orphan": {"model_name": "ImageModel", "state": {}},                      # made by a test cell, not shown
        "halflink": {"model_name": "LinkModel", "state": {"source": ["IPY_MODEL_orphan", "value"],
                                                          "target": ["IPY_MODEL_slider", "value"]}},
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {mime: {"state": state, "version_major": 2, "version_minor": 0}}
    out = nbformat.v4.new_output("display_data", {build_site.WIDGET_VIEW: {"model_id": "box"}})
    nb.cells = [nbformat.v4.new_code_cell("w", outputs=[out])]
    build_site.prune_widget_state(nb)
    assert set(nb.metadata["widgets"][mime]["state"]) == {"box", "img", "lay", "slider", "link"}
    nb.cells = []
    build_site.prune_widget_state(nb)
    assert "widgets" not in nb.metadata                                            # no widget, no 3 MB manager


def test_cells_skipped_like_nbdev_test():
    "The build does not run what nbdev_test does not run: tst_flags cells (#| slow) and #| eval: false."
    flags = set(build_site.settings().get("tst_flags", "").split())
    assert "slow" in flags
    cell = nbformat.v4.new_code_cell
    assert build_site._skipped(cell("#| slow\ntrain(steps=10_000)"), flags)
    assert build_site._skipped(cell("#| eval: false\nx = 1"), flags)
    assert not build_site._skipped(cell("#| export\nx = 1"), flags)
    assert not build_site._skipped(cell("x = 1  # slow"), flags)


def test_exported_cells_are_short():
    "No exported cell has more than 60 lines: a longer one is split, with an example and a test between the parts."
    found = long_cells.long_cells()
    assert not found, "exported cells over 60 lines (split them):\n" + "\n".join(
        f"{c.notebook} cell {c.index} ({c.name}): {c.lines} lines" for c in found)


def test_long_cells_finds_long_exported_cells(tmp_path, capsys):
    code = lambda n, head: nbformat.v4.new_code_cell("\n".join([head] + [f"x{i} = {i}" for i in range(n - 1)]))
    nb = nbformat.v4.new_notebook()
    nb.cells = [code(61, "#| export"), code(60, "#| export"), code(100, "#| hide"), code(80, "x = 1  #| export"),
                code(70, "#| eval: false\n#|exports"), nbformat.v4.new_markdown_cell("text\n" * 100),
                nbformat.v4.new_code_cell("#| export\nclass Big:\n" + "    a = 1\n" * 70)]
    (tmp_path / "sub").mkdir()
    nbformat.write(nb, tmp_path / "sub" / "a.ipynb")
    found = long_cells.long_cells([tmp_path])
    assert [(c.index, c.lines, c.name) for c in found] == [(0, 61, "x0"), (4, 71, "x0"), (6, 72, "Big")], found
    assert long_cells.long_cells([tmp_path], limit=80) == []
    assert long_cells.main([str(tmp_path)]) == 1 and "cell   6:   72 lines  Big" in capsys.readouterr().out
    assert long_cells.main([str(tmp_path / "missing.ipynb")]) == 2
