"""HTTP errors carrying Consul's status codes and plain-text reasons. Imports: nothing."""


class HTTPError(Exception):
    """An error with a status code and a plain-text body, as Consul's `HTTPError`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason or "An unexpected error occurred"


def bad_request(reason: str) -> HTTPError:
    return HTTPError(400, reason)


def not_found(reason: str) -> HTTPError:
    return HTTPError(404, reason)
