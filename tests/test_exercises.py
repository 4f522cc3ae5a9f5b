"""Every lesson's exercises can be solved: run each lesson with its worked solutions in.

A lesson ships its exercise cells (tagged ``exercise``) as stubs for the
learner; ``notebooks/solutions/NN.py`` holds one worked solution per exercise
cell, in order, each after a ``# %% exercise`` line. Here the solutions
replace the stubs, the lesson runs top to bottom in a real kernel, and every
check cell (tagged ``check``) must say "Correct."
"""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from logstream.support.exercises import CORRECT, NOT_DONE

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
SOLVED = [path for path in LESSONS if (SOLUTIONS / f"{path.name[:2]}.py").exists()]


def tagged(lesson, tag):
    return [cell for cell in lesson.cells if tag in cell.metadata.get("tags", [])]


def solutions(path):
    """Return the worked solutions of a lesson, one source string per exercise cell."""
    text = (SOLUTIONS / f"{path.name[:2]}.py").read_text()
    return [part.strip("\n") for part in re.split(r"^# %% exercise.*\n", text, flags=re.M)[1:]]


def with_solutions(path):
    """Return the lesson with each exercise cell's stub replaced by its solution."""
    lesson = nbformat.read(path, as_version=4)
    exercises, answers = tagged(lesson, "exercise"), solutions(path)
    assert len(exercises) == len(answers) >= 1, (
        f"{path.name} has {len(exercises)} exercise cells and {len(answers)} solutions")
    for cell, answer in zip(exercises, answers):
        cell.source = answer
    return lesson


def printed(cell):
    return "".join(output.get("text", "") for output in cell.outputs
                   if output.output_type == "stream")


def test_lessons_with_solutions():
    assert {path.name[:2] for path in SOLVED} == {path.name[:2] for path in LESSONS}


@pytest.mark.parametrize("path", SOLVED, ids=[path.stem for path in SOLVED])
def test_the_shipped_exercises_are_left_for_the_learner(path):
    lesson = nbformat.read(path, as_version=4)
    for cell in tagged(lesson, "exercise"):
        assert re.search(r"= \.\.\.$|raise NotImplementedError", cell.source, re.M), cell.source
        assert cell.source not in solutions(path)
    checks = tagged(lesson, "check")
    assert checks and all("@check" in cell.source for cell in checks)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", SOLVED, ids=[path.stem for path in SOLVED])
def test_the_worked_solutions_pass_the_checks(path):
    lesson = with_solutions(path)
    # A failed check raises, and nbclient then fails the run at that cell.
    NotebookClient(lesson, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    for cell in tagged(lesson, "check"):
        said = printed(cell)
        assert CORRECT in said and NOT_DONE not in said, f"{path.name}: the check said {said!r}"


def test_check_says_what_is_missing_or_wrong(capsys):
    from logstream.support.exercises import WrongAnswer, check, given

    answer = ...
    assert check(lambda: given(answer)) is False
    assert "Not done yet: put your result in `answer` instead of `...`" in capsys.readouterr().out

    def wrong():
        assert given(2) == 3, "2 lines counted, the file has 3"

    with pytest.raises(WrongAnswer, match="the file has 3"):
        check(wrong)
    assert "Not quite: 2 lines counted, the file has 3" in capsys.readouterr().out

    @check(done="Three it is.")
    def right():
        assert given(3) == 3

    assert right is True and capsys.readouterr().out == "Correct. Three it is.\n"
