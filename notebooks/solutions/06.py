# Worked solutions for lesson 06. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/06.py` pastes this whole file into a cell.

# %% exercise 1
def phase_counts(lines):
    return Counter(describe_line(message)[1] for _, message in lines)
