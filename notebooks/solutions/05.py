# Worked solutions for lesson 05. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/05.py` pastes this whole file into a cell.

# %% exercise 1
def resume_after(last_id, until):
    numbers = []
    url = f"{server.url}/deployments/demo/events"
    for event in read_sse(url, headers={"Last-Event-ID": str(last_id)}):
        if "id" not in event or event.get("event", "message") != "message":
            continue                      # the status event and heartbeat comments
        numbers.append(int(event["id"]))
        if numbers[-1] >= until:
            return numbers
