# Worked solutions for lesson 08. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/08.py` pastes this whole file into a cell.

# %% exercise 1
import math
import random

def mean_wait(interval, n=20_000):
    total = 0.0
    for _ in range(n):
        arrives = random.uniform(0, 10)
        next_look = math.ceil(arrives / interval) * interval
        total += next_look - arrives
    return total / n
