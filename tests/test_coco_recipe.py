"""datasets/coco.py, the COCO download recipe, on a tiny fake archive served from 127.0.0.1:
argument parsing, resumable download, verification (size, MD5, CRC, image count) and atomic extraction.
Nothing here touches the internet."""
from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import sys
import threading
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "datasets" / "coco.py"


@pytest.fixture(scope="module")
def coco():
    spec = importlib.util.spec_from_file_location("fastst_coco_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def make_zip(names: list[str], payload: bytes = b"\xff\xd8 fake jpeg body \xff\xd9" * 20) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # stored: a flipped byte hits a CRC
        zf.writestr("train2014/", b"")
        for name in names:
            zf.writestr(name, payload + name.encode())
    return buf.getvalue()


IMAGES = [f"train2014/COCO_train2014_{i:012d}.jpg" for i in (9, 25, 30)]


@pytest.fixture
def fake(coco, tmp_path):
    """A three-image 'train2014.zip' on disk and the Archive record describing it."""
    data = make_zip(IMAGES)
    path = tmp_path / "fake.zip"
    path.write_bytes(data)
    archive = coco.Archive("2014", "http://127.0.0.1/train2014.zip", len(data), hashlib.md5(data).hexdigest(),
                           "train2014", 3)
    return path, data, archive


# ---------------------------------------------------------------- a local HTTP server with Range support


class Handler(http.server.BaseHTTPRequestHandler):
    data = b""
    honour_range = True
    cut_first_after: int | None = None  # send only this many bytes of the first response, then hang up
    ranges: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        cls = type(self)
        if self.path != "/train2014.zip":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        cls.ranges.append(rng)
        start = 0
        if rng and cls.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(cls.data) - 1}/{len(cls.data)}")
        else:
            self.send_response(200)
        body = cls.data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cls.cut_first_after is not None:
            body, cls.cut_first_after = body[: cls.cut_first_after], None
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(fake):
    _, data, _ = fake
    handler = type("H", (Handler,), {"data": data, "honour_range": True, "cut_first_after": None, "ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/train2014.zip"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- module shape and arguments


def test_datasets_is_not_an_importable_package():
    assert not (REPO / "datasets" / "__init__.py").exists()
    spec = importlib.util.find_spec("datasets")
    # at most a namespace portion (origin None), which any installed `datasets` package (e.g. HF) outranks
    if spec is not None and spec.origin is not None:
        assert REPO not in Path(spec.origin).parents


def test_published_archive_facts(coco):
    a14, a17 = coco.ARCHIVES["2014"], coco.ARCHIVES["2017"]
    assert (a14.url, a14.size, a14.md5, a14.folder, a14.images) == (
        "http://images.cocodataset.org/zips/train2014.zip", 13_510_573_713, "0da8c0bd3d6becc4dcb32757491aca88",
        "train2014", 82_783)
    assert (a17.url, a17.size, a17.md5, a17.folder, a17.images) == (
        "http://images.cocodataset.org/zips/train2017.zip", 19_336_861_798, "cced6f7f71b7629ddf16f17bbcfab6b2",
        "train2017", 118_287)
    assert a14.filename == "train2014.zip"


def test_parse_args(coco, monkeypatch, tmp_path):
    args = coco.parse_args([])
    assert args.year == "2014" and args.dest == Path("data/coco") and not args.keep_zip and not args.skip_md5
    monkeypatch.setenv("HOME", str(tmp_path))
    args = coco.parse_args(["--year", "2017", "--dest", "~/coco", "--keep-zip", "--skip-md5", "--quiet"])
    assert args.year == "2017" and args.dest == tmp_path / "coco" and args.keep_zip and args.skip_md5 and args.quiet


@pytest.mark.parametrize("argv", [["--year", "2015"], ["--dest"], ["--bogus"]])
def test_bad_arguments_exit_2(coco, argv, capsys):
    with pytest.raises(SystemExit) as e:
        coco.parse_args(argv)
    assert e.value.code == 2
    assert "usage: coco.py" in capsys.readouterr().err


# ---------------------------------------------------------------- verification


def test_verify_accepts_the_right_archive(coco, fake):
    path, _, archive = fake
    assert coco.verify(path, archive, quiet=True) == 3
    assert coco.verify(path, archive, check_md5=False, quiet=True) == 3


def test_verify_rejects_wrong_size(coco, fake):
    path, data, archive = fake
    path.write_bytes(data[:-10])
    with pytest.raises(coco.RecipeError, match="expected"):
        coco.verify(path, archive, quiet=True)


def test_verify_rejects_corrupt_bytes_by_md5_or_crc(coco, fake):
    path, data, archive = fake
    corrupt = bytearray(data)
    i = data.index(b"fake jpeg body")  # inside the first member's stored data
    corrupt[i] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(coco.RecipeError, match="MD5"):
        coco.verify(path, archive, quiet=True)
    with pytest.raises(coco.RecipeError, match="CRC"):
        coco.verify(path, archive, check_md5=False, quiet=True)


def test_verify_rejects_wrong_image_count(coco, tmp_path):
    data = make_zip(IMAGES[:2] + ["train2014/readme.txt"])
    path = tmp_path / "short.zip"
    path.write_bytes(data)
    archive = coco.Archive("2014", "x", len(data), hashlib.md5(data).hexdigest(), "train2014", 3)
    with pytest.raises(coco.RecipeError, match="2 images"):
        coco.verify(path, archive, quiet=True)


def test_verify_rejects_non_zip_and_unsafe_names(coco, tmp_path):
    junk = b"<html>captive portal</html>" * 10
    path = tmp_path / "junk.zip"
    path.write_bytes(junk)
    archive = coco.Archive("2014", "x", len(junk), hashlib.md5(junk).hexdigest(), "train2014", 3)
    with pytest.raises(coco.RecipeError, match="not a valid zip"):
        coco.verify(path, archive, quiet=True)
    evil = make_zip(IMAGES + ["train2014/../../evil.jpg"])
    path.write_bytes(evil)
    archive = coco.Archive("2014", "x", len(evil), hashlib.md5(evil).hexdigest(), "train2014", 3)
    with pytest.raises(coco.RecipeError, match="unsafe"):
        coco.verify(path, archive, quiet=True)


# ---------------------------------------------------------------- extraction


def test_extract_is_atomic(coco, fake, tmp_path):
    path, _, archive = fake
    dest = tmp_path / "coco"
    dest.mkdir()
    final = coco.extract(path, dest, archive, quiet=True)
    assert final == dest / "train2014"
    assert sorted(p.name for p in final.iterdir()) == sorted(Path(n).name for n in IMAGES)
    assert (final / Path(IMAGES[1]).name).read_bytes().endswith(IMAGES[1].encode())
    assert [p.name for p in dest.iterdir()] == ["train2014"]  # no temporary folder left
    with pytest.raises(coco.RecipeError, match="already exists"):
        coco.extract(path, dest, archive, quiet=True)


def test_interrupted_extract_leaves_nothing(coco, fake, tmp_path, monkeypatch):
    path, _, archive = fake
    dest = tmp_path / "coco"
    dest.mkdir()
    calls = []

    def failing_copy(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        dst.write(src.read())

    monkeypatch.setattr(coco.shutil, "copyfileobj", failing_copy)
    with pytest.raises(OSError):
        coco.extract(path, dest, archive, quiet=True)
    assert list(dest.iterdir()) == []  # neither a half-filled train2014/ nor the temporary folder


# ---------------------------------------------------------------- download


def test_download_fresh(coco, fake, server, tmp_path):
    _, data, _ = fake
    handler, url = server
    out = coco.download(url, tmp_path / "train2014.zip", len(data), quiet=True)
    assert out.read_bytes() == data
    assert handler.ranges == [None]
    assert not (tmp_path / "train2014.zip.part").exists()
    coco.download(url, out, len(data), quiet=True)  # complete file: no request at all
    assert handler.ranges == [None]


def test_download_resumes_partial_file(coco, fake, server, tmp_path):
    _, data, _ = fake
    handler, url = server
    (tmp_path / "train2014.zip.part").write_bytes(data[:300])
    out = coco.download(url, tmp_path / "train2014.zip", len(data), quiet=True)
    assert out.read_bytes() == data
    assert handler.ranges == ["bytes=300-"]


def test_download_restarts_when_server_ignores_range(coco, fake, server, tmp_path):
    _, data, _ = fake
    handler, url = server
    handler.honour_range = False
    (tmp_path / "train2014.zip.part").write_bytes(b"x" * 300)  # would corrupt the file if appended to
    out = coco.download(url, tmp_path / "train2014.zip", len(data), quiet=True)
    assert out.read_bytes() == data


def test_download_retries_and_resumes_after_a_dropped_connection(coco, fake, server, tmp_path, monkeypatch):
    _, data, _ = fake
    handler, url = server
    handler.cut_first_after = 500
    monkeypatch.setattr(coco.time, "sleep", lambda s: None)
    out = coco.download(url, tmp_path / "train2014.zip", len(data), quiet=True)
    assert out.read_bytes() == data
    assert handler.ranges == [None, "bytes=500-"]


def test_download_gives_up_on_http_404(coco, tmp_path, server):
    handler, url = server
    with pytest.raises(coco.RecipeError, match="404"):
        coco.download(url.replace("train2014.zip", "") + "missing", tmp_path / "x.zip", 10, quiet=True)


# ---------------------------------------------------------------- the whole recipe


def test_main_end_to_end(coco, fake, server, tmp_path, monkeypatch, capsys):
    _, data, archive = fake
    _, url = server
    monkeypatch.setitem(coco.ARCHIVES, "2014", archive)
    dest = tmp_path / "coco"
    assert coco.main(["--year", "2014", "--dest", str(dest), "--url", url, "--quiet"]) == 0
    out = capsys.readouterr().out
    images = (dest / "train2014").resolve()
    assert f"fastst train --data {images} " in out and "3 images" in out
    assert sorted(p.name for p in dest.iterdir()) == ["train2014"]  # archive removed after extraction
    # a second run finds everything in place and downloads nothing
    monkeypatch.setattr(coco, "download", lambda *a, **k: pytest.fail("downloaded again"))
    assert coco.main(["--year", "2014", "--dest", str(dest), "--quiet"]) == 0


def test_run_keeps_zip_when_asked(coco, fake, tmp_path, monkeypatch):
    path, data, archive = fake
    monkeypatch.setitem(coco.ARCHIVES, "2014", archive)

    def fetch(url, dest, size, quiet=False):
        dest.write_bytes(data)
        return dest

    args = coco.parse_args(["--dest", str(tmp_path / "c"), "--keep-zip", "--quiet"])
    assert coco.run(args, fetch=fetch) == tmp_path / "c" / "train2014"
    assert (tmp_path / "c" / "train2014.zip").read_bytes() == data


def test_corrupt_download_is_reported_not_extracted(coco, fake, tmp_path, monkeypatch, capsys):
    _, data, archive = fake
    monkeypatch.setitem(coco.ARCHIVES, "2014", archive)
    monkeypatch.setattr(coco, "download", lambda url, dest, size, quiet=False: dest.write_bytes(
        data[:100] + b"!" + data[101:]) and dest)
    assert coco.main(["--dest", str(tmp_path / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coco.py: error:") and "MD5" in err and err.count("\n") == 1
    assert not (tmp_path / "c" / "train2014").exists()


def test_incomplete_existing_folder_is_not_touched(coco, fake, tmp_path, monkeypatch, capsys):
    _, _, archive = fake
    monkeypatch.setitem(coco.ARCHIVES, "2014", archive)
    (tmp_path / "c" / "train2014").mkdir(parents=True)
    (tmp_path / "c" / "train2014" / "a.jpg").write_bytes(b"x")
    assert coco.main(["--dest", str(tmp_path / "c"), "--quiet"]) == 2
    assert "holds 1 images, expected 3" in capsys.readouterr().err
    assert (tmp_path / "c" / "train2014" / "a.jpg").exists()


def test_not_enough_disk_space(coco, fake, tmp_path, monkeypatch, capsys):
    _, _, archive = fake
    monkeypatch.setitem(coco.ARCHIVES, "2014", coco.ARCHIVES["2014"])
    monkeypatch.setattr(coco.shutil, "disk_usage", lambda p: type("U", (), {"free": 5 * 10**9})())
    monkeypatch.setattr(coco, "download", lambda *a, **k: pytest.fail("should not start downloading"))
    assert coco.main(["--dest", str(tmp_path / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "5.0 GB free, need about 27.0 GB" in err
