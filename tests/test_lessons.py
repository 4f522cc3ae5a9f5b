"""The lessons keep their shape: no committed outputs, the same opening and ending."""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def test_there_are_lessons():
    assert len(LESSONS) >= 7


@pytest.fixture(params=LESSONS, ids=[path.stem for path in LESSONS])
def lesson_path(request):
    return request.param


@pytest.fixture
def lesson(lesson_path):
    return nbformat.read(lesson_path, as_version=4)


def markdown(lesson):
    return "\n".join(cell.source for cell in lesson.cells if cell.cell_type == "markdown")


def test_outputs_are_not_committed(lesson):
    code = [cell for cell in lesson.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert lesson.metadata.kernelspec.name == "python3"
    nbformat.validate(lesson)


def test_a_lesson_is_short_and_opens_with_what_and_why(lesson):
    assert 10 <= len(lesson.cells) <= 25
    opening = lesson.cells[0].source
    assert re.match(r"# [A-Z][a-z]+ ", opening), "a title in sentence case"
    for heading in ("What you'll learn", "What you'll do", "What you'll need"):
        assert heading in opening


def test_a_lesson_ends_with_a_recap_and_a_checked_exercise(lesson_path, lesson):
    text = markdown(lesson)
    assert "## Recap" in text and "## Exercise" in text
    exercise = next(i for i, cell in enumerate(lesson.cells) if "## Exercise" in cell.source)
    after = lesson.cells[exercise:]
    tags = [cell.metadata.get("tags", []) for cell in after]
    first_exercise = next(i for i, cell_tags in enumerate(tags) if "exercise" in cell_tags)
    assert any("check" in cell_tags for cell_tags in tags[first_exercise:]), \
        "a check cell follows the exercise"
    assert (NOTEBOOKS / "solutions" / f"{lesson_path.name[:2]}.py").exists()


def test_a_lesson_speaks_to_the_learner_not_of_its_making(lesson):
    for cell in lesson.cells:
        assert "NBVAL_" not in cell.source, "cells CI treats specially are tagged, not commented"
        assert not re.search(r"\bissues?\b|\bthe seed\b|\bbar \d|\btests/|grew from",
                             cell.source, re.I), cell.source
    assert "## Further reading" in markdown(lesson)
    assert re.search(r"\]\(https://", markdown(lesson).split("## Further reading")[1])


def test_a_lesson_runs_its_own_quiet_server_and_stops_it(lesson):
    code = "\n".join(cell.source for cell in lesson.cells if cell.cell_type == "code")
    # Its own server in the kernel, or (lesson 09) its own processes.
    assert "start_server(" in code or "Topology(" in code
    assert all("quiet=True" in call for call in re.findall(r"start_server\([^)]*\)", code))
    assert "server.stop()" in lesson.cells[-1].source or "topology.stop()" in lesson.cells[-1].source


def test_the_maps_list_every_lesson():
    readme = (NOTEBOOKS / "README.md").read_text()
    start_here = markdown(nbformat.read(NOTEBOOKS / "00-start-here.ipynb", as_version=4))
    for path in LESSONS:
        assert f"]({path.name})" in readme and f"]({path.name})" in start_here, path.name
