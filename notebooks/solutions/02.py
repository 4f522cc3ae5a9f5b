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

# %% exercise 2
def read_packet(frame):
    assert frame[0] == "4", "an Engine.IO message"
    kind = {"2": "EVENT", "3": "ACK"}[frame[1]]
    rest = frame[2:]
    digits = len(rest) - len(rest.lstrip("0123456789"))
    ack_id = int(rest[:digits]) if digits else None
    return kind, ack_id, json.loads(rest[digits:])
