"""Check client requests and describe what is wrong with them in plain words."""

from logstream.core.deployments import ID_PATTERN, is_valid_id


class RequestError(Exception):
    """A bad request: ``code`` for programs, ``message`` for people."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    def payload(self):
        """Return the body of the stream_error event (or HTTP error) for this error."""
        return {"error": self.code, "message": self.message}


def deployment_id_from(value):
    """Return value if it is a well-formed deployment id, else raise RequestError."""
    if not isinstance(value, str):
        raise RequestError(
            "invalid_deployment_id",
            "deployment_id must be a string, such as \"shop-api-1\".")
    if not is_valid_id(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise RequestError(
            "invalid_deployment_id",
            f"{shown!r} is not a deployment id: use 1 to 64 letters, digits, "
            f"'.', '_' or '-', starting with a letter or digit "
            f"(pattern {ID_PATTERN.pattern}).")
    return value


def since_from(value, name="since"):
    """Return value as a line number to resume after, or None when absent."""
    if value is None:
        return None
    # bool is a subclass of int in Python, but true is not a line number.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(
            "invalid_since",
            f"{name} must be a whole number of lines (0 or more), not {value!r}.")
    if value < 0:
        raise RequestError(
            "invalid_since", f"{name} must be 0 or more, not {value}.")
    return value


def start_streaming_request(data):
    """Return (deployment_id, since, batch) from a start_streaming payload."""
    if not isinstance(data, dict):
        raise RequestError(
            "invalid_payload",
            "start_streaming needs an object such as "
            "{\"deployment_id\": \"shop-api-1\"}.")
    unknown = set(data) - {"deployment_id", "since", "batch"}
    if unknown:
        raise RequestError(
            "invalid_payload",
            f"start_streaming does not take {', '.join(sorted(map(str, unknown)))}; "
            "it takes deployment_id, since and batch.")
    if "deployment_id" not in data:
        raise RequestError("invalid_payload", "start_streaming needs a deployment_id.")
    deployment_id = deployment_id_from(data["deployment_id"])
    since = since_from(data.get("since"))
    batch = data.get("batch", False)
    if not isinstance(batch, bool):
        raise RequestError(
            "invalid_batch", f"batch must be true or false, not {batch!r}.")
    return deployment_id, since, batch


def stop_streaming_request(data):
    """Return the deployment_id from a stop_streaming payload."""
    if not isinstance(data, dict) or "deployment_id" not in data:
        raise RequestError(
            "invalid_payload",
            "stop_streaming needs an object such as {\"deployment_id\": \"shop-api-1\"}.")
    return deployment_id_from(data["deployment_id"])
