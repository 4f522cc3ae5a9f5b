"""The fast path from an emit to the socket: pre-encoded payloads, one encode per room."""

import json

from socketio.packet import Packet


class RawJSON(str):
    """JSON text that goes into a Socket.IO packet as it is, not as a string."""


class _PacketJSON:
    """The json module the packets use: stdlib json, splicing RawJSON in unchanged."""

    loads = staticmethod(json.loads)

    @staticmethod
    def dumps(obj, **kwargs):
        if isinstance(obj, list) and any(type(item) is RawJSON for item in obj):
            return "[" + ",".join(item if type(item) is RawJSON else json.dumps(item, **kwargs)
                                  for item in obj) + "]"
        return json.dumps(obj, **kwargs)


class LogPacket(Packet):
    """A Socket.IO packet that encodes RawJSON arguments without walking them."""

    json = _PacketJSON

    @classmethod
    def data_is_binary(cls, data):
        # The stock check walks every value of every line of a batch, which
        # cost more than encoding it; strings (RawJSON too) are never binary.
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return False
        return super().data_is_binary(data)
