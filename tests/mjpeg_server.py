"""A local HTTP MJPEG camera for tests: real sockets on 127.0.0.1, in a thread.

Each connection streams ``frames_per_connection`` JPEG frames as ``multipart/x-mixed-replace`` and
then drops, like a Wi-Fi camera losing its link; after ``max_connections`` it refuses (HTTP 503),
like a camera that is gone. ``frames_per_connection=0`` streams until the server is closed.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np


class MjpegServer:
    def __init__(
        self, rgb: np.ndarray, *, frames_per_connection: int = 0, max_connections: int = 0, fps: float = 50.0
    ):
        self.jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        self.frames_per_connection = frames_per_connection
        self.max_connections = max_connections
        self.period = 1.0 / fps
        self.connections = 0
        self.frames_sent = 0
        self._closing = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.connections += 1
                if outer.max_connections and outer.connections > outer.max_connections:
                    self.send_error(503, "camera gone")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                try:
                    while not outer._closing.is_set():
                        if outer.frames_per_connection and sent >= outer.frames_per_connection:
                            break
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(
                            outer.jpeg
                        )
                        self.wfile.write(head + outer.jpeg + b"\r\n")
                        self.wfile.flush()
                        sent += 1
                        outer.frames_sent += 1
                        time.sleep(outer.period)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
