# Worked solutions for lesson 02. Each part replaces the exercise cell of the same number;
# in the lesson, `%load solutions/02.py` pastes this whole file into a cell.

# %% exercise 1
def unknown_event_error(url):
    with RawSocket(url) as conn:
        conn.receive()                       # 0{...}: the Engine.IO open packet
        conn.send("40")                      # join the default namespace
        conn.receive()                       # 40{"sid": ...}
        conn.send('42["hello",{}]')
        name, payload = json.loads(conn.receive()[2:])
    assert name == "stream_error", name
    return payload["error"]
