# Worked solutions for lesson 09. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/09.py` pastes this whole file into a cell.

# %% exercise 1
def follow_everywhere(urls, deployment, since):
    pairs = []
    for url in urls:
        client = LogClient(url).connect()
        pairs.append((client, client.follow(deployment, since=since)))
    return pairs
