# Worked solutions for lesson 03. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/03.py` pastes this whole file into a cell.

# %% exercise 1
def rooms_for(deployments, batch):
    client = LogClient(server.url).connect()
    try:
        for name in deployments:
            client.follow(name, batch=batch)
        return joined(client)          # already sorted, without the connection's own sid
    finally:
        client.close()
