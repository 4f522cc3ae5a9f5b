# Worked solutions for lesson 04. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/04.py` pastes this whole file into a cell.

# %% exercise 1
def split_lines(kept, chunk):
    *complete, rest = (kept + chunk).split("\n")
    return complete, rest
