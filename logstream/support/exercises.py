"""Check a lesson's exercise and tell the learner what is missing or wrong.

A lesson's exercise cell holds a stub (``answer = ...`` or a function that
raises ``NotImplementedError``); its check cell is a function decorated with
:func:`check`, which runs at once and prints one of three things:

- ``Not done yet: …`` when the stub is still there, with what to do next;
- ``Not quite: …`` with the failed assertion's message, when the answer is wrong;
- ``Correct. …`` when every assertion holds.

A wrong answer raises :class:`WrongAnswer` after printing, so a notebook run
stops there; a missing one does not, so the lesson as shipped runs top to bottom.
"""

import functools

NOT_DONE = "Not done yet"
CORRECT = "Correct."


class WrongAnswer(AssertionError):
    """An exercise's answer is there, and wrong."""


def given(answer, what="answer"):
    """Return answer, or raise NotImplementedError while it is still ``...``."""
    if answer is Ellipsis:
        raise NotImplementedError(f"put your result in `{what}` instead of `...`")
    return answer


def check(function=None, *, done="", todo="write your code in the exercise cell above"):
    """Run a check function now and print whether the exercise is done, wrong or right.

    Use it as ``@check`` or ``@check(done="…", todo="…")`` on a function whose
    assertions carry messages that say what is wrong.
    """
    def run(function):
        try:
            function()
        except NotImplementedError as missing:
            hint = str(missing) or todo
            print(f"{NOT_DONE}: {hint}, then run this cell again.")
            return False
        except AssertionError as wrong:
            print(f"Not quite: {wrong}")
            raise WrongAnswer(str(wrong)) from None
        print(f"{CORRECT} {done}".rstrip())
        return True

    if function is not None:
        return run(function)
    return functools.partial(_decorated, run)


def _decorated(run, function):
    return run(function)
