"""Serve an exported web page on this machine. Unlike `python -m http.server`, it sends the two headers
that make a page cross-origin isolated (COOP/COEP), which onnxruntime-web needs to run WebAssembly on
several threads, and the JavaScript and WebAssembly content types on every system."""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

from fastst.errors import FaststError

TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream", ".html": "text/html",
         ".css": "text/css", ".png": "image/png", ".txt": "text/plain"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the isolation headers (when `isolate`) and no caching: a re-exported page
    is never mixed with an older model."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}
    isolate = True
    quiet = True

    def end_headers(self) -> None:
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        if not self.quiet:
            super().log_message(format, *args)


def make_server(directory: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                isolate: bool = True, quiet: bool = True) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the page in `directory` (port 0: any free port); call serve_forever()."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise FaststError("not an exported web page (no index.html)", directory)
    handler = type("Handler", (_Handler,), {"isolate": isolate, "quiet": quiet})
    try:
        return http.server.ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(directory)))
    except OSError as e:
        raise FaststError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


class BackgroundServer:
    """make_server() run in a daemon thread, as a context manager: `with BackgroundServer(dir) as url:`."""

    def __init__(self, directory: str | os.PathLike, isolate: bool = True) -> None:
        self.server = make_server(directory, port=0, isolate=isolate)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
