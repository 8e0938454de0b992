"""What every route of a simulated Server shares: its error body and its log line."""

from __future__ import annotations

import os
import sys
import time

from supervisor_pd.simulator.httpd import Response, json_response

ERROR_TYPES = {
    400: "Bad Request",
    404: "NotFoundError",
    422: "Input Validation Error",
    424: "Generation Error",
    500: "Incomplete Generation",
    503: "Service Unavailable",
}


def error(status: int, message: str) -> Response:
    return json_response({"error": message, "error_type": ERROR_TYPES.get(status, "Error")}, status)


def log(message: str) -> None:
    sys.stdout.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] [{os.getpid()}] {message}\n")
    sys.stdout.flush()
