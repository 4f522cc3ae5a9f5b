"""Build a static HTML site of the executed lessons: one page per lesson and an index.

    python scripts/build_site.py [DEST] [--execute NN ...]

Every lesson runs in a fresh kernel as a learner gets it (exercises left to
do) and is written as HTML with its outputs and images inlined; the pages load
nothing from the network. By default every lesson runs; with ``--execute``,
only the lessons named (by number) do and the others are shown without outputs.
"""

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TEMPLATE = Path(__file__).resolve().parent / "site_template"
# A link to a lesson in the same folder, as markdown writes it: ](NN-title.ipynb)
LESSON_LINK = re.compile(r"\]\((\d\d-[\w-]+)\.ipynb(#[\w-]*)?\)")


def html_links(markdown):
    """Point the links between lessons at their pages instead of their notebooks."""
    return LESSON_LINK.sub(r"](\1.html\2)", markdown)


def lesson_page(path, nav, execute):
    """Return the HTML page of one lesson, run first when execute is true."""
    lesson = nbformat.read(path, as_version=4)
    for cell in lesson.cells:
        if cell.cell_type == "markdown":
            cell.source = html_links(cell.source)
    if execute:
        # The shipped lesson leaves its exercises to the reader; their checks say so.
        NotebookClient(lesson, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    exporter = HTMLExporter(template_name="site", extra_template_basedirs=[str(TEMPLATE)],
                            embed_images=True, exclude_anchor_links=False)
    body, _ = exporter.from_notebook_node(lesson, resources={"site_nav": nav,
                                                             "metadata": {"name": path.stem}})
    return body


def index_page():
    """Return the index: notebooks/README.md with links to the lesson pages."""
    readme = html_links((NOTEBOOKS / "README.md").read_text())
    body = markdown2html(readme)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n"
            "<title>logstream lessons</title>\n<style>body { max-width: 50em; margin: 2em auto; "
            "font-family: sans-serif; line-height: 1.5 } table { border-collapse: collapse } "
            "td, th { border: 1px solid #999; padding: .3em .6em } "
            "pre { background: #f4f4f4; padding: .6em }</style>\n"
            f"</head>\n<body>\n{body}\n</body>\n</html>\n")


def navigation(lessons, i):
    nav = [("All lessons", "index.html")]
    if i > 0:
        nav.append((f"← {lessons[i - 1].name[:2]}", f"{lessons[i - 1].stem}.html"))
    if i + 1 < len(lessons):
        nav.append((f"{lessons[i + 1].name[:2]} →", f"{lessons[i + 1].stem}.html"))
    return nav


def build(dest, execute=None):
    """Write the site into dest (emptied first); execute: lesson numbers to run, None for all."""
    # The kernels must import this checkout's logstream, whichever one is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    for i, path in enumerate(lessons):
        run = execute is None or path.name[:2] in execute
        print(f"{'running' if run else 'copying'} {path.name}", file=sys.stderr, flush=True)
        page = lesson_page(path, navigation(lessons, i), run)
        (dest / f"{path.stem}.html").write_text(page)
    (dest / "index.html").write_text(index_page())
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", default=str(ROOT / "build" / "site"))
    parser.add_argument("--execute", nargs="*", metavar="NN",
                        help="run only these lessons (by number); the default runs all")
    args = parser.parse_args(argv)
    print(build(args.dest, args.execute))


if __name__ == "__main__":
    main()
