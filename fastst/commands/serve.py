"""`fastst serve DIR`: serve a page written by `fastst export --web` on this machine, cross-origin
isolated so that onnxruntime-web can run WebAssembly on several threads."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import FaststError
from .flags import positive

MAX_PORT = 65535


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve", help="serve a web page written by `fastst export --web`",
        description="Serve a page written by `fastst export --web DIR` over HTTP, with the cross-origin isolation "
                    "headers that let the browser run the model on several WebAssembly threads. Ctrl-C stops it.")
    p.add_argument("folder", metavar="DIR", help="the page's folder")
    p.add_argument("--port", type=positive(0, MAX_PORT), default=8000,
                   help=f"port, 0 to {MAX_PORT} (default 8000; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for your network)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from export.web_serve import make_server

    folder = Path(args.folder)
    if not folder.exists():
        raise FaststError("no such folder", folder)
    if not folder.is_dir():
        raise FaststError("not a folder (give the page's folder, as `fastst export --web` wrote it)", folder)
    server = make_server(args.folder, host=args.host, port=args.port, quiet=False)
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    print(f"serving {args.folder} at http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
