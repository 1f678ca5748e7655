"""The lake and its sources on S3 (moto) against local disk, same data, same run.

1. SQL: the 20-session lake of bench_distributed.py, local and uploaded byte for byte to a moto
   bucket; opening the lake and four questions, through nplake's path (lake/sql/s3.py: sizes
   and times from the snapshot, small files whole) and the alternatives DuckDB can read S3
   through here: plain s3fs registered on the connection (the previous path), s3fs with a small
   block and a bytes cache, and pyarrow's S3 filesystem wrapped for fsspec.
2. Remote NWB ingest: the realistic synthetic session of bench_ingest.py from local disk, from
   moto over S3, and over HTTP from a small range-capable server started here (moto copies the
   whole object for every ranged GET: about 0.5 s a request on a 913 MB object, whatever the
   range; the HTTP server reads just the range), with the bytes read against the file's size.

Every measurement is a fresh process; the variants alternate, several rounds, because the
machine is shared with other test runs.

    python benchmarks/bench_s3.py                 # 3 rounds of SQL, 2 of ingest
    python benchmarks/bench_s3.py --sql-rounds 1 --ingest-rounds 1 --no-doc
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import hashlib
import os
import shutil
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import DATA, machine, median, run_child, write_section
from bench_distributed import corpus
from bench_ingest import session_file

from tests.s3 import BUCKET, KEY, SECRET, MotoS3

QUESTIONS = {
    "count spikes": "SELECT count(*) FROM spikes",
    "units per area": "SELECT structure_acronym, count(*) FROM units_annotated GROUP BY 1",
    "spikes x units": (
        "SELECT u.quality, count(*), avg(s.time) FROM spikes s "
        "JOIN units u USING (session_id, unit_id) GROUP BY 1"
    ),
    "one session": "SELECT sum(time) FROM spikes WHERE session_id = (SELECT min(session_id) "
    "FROM sessions)",
}

SQL = """
import time, json, lake
_result = {{}}
variant = {variant!r}
if variant != "nplake":
    import lake.sql.s3 as paths
    def plain(s3, root, manifest_files, arrow=None):
        if variant == "s3fs":
            return s3
        if variant == "s3fs-1mb-bytes":
            import s3fs
            return s3fs.S3FileSystem(key={key!r}, secret={secret!r}, endpoint_url={endpoint!r},
                                     default_block_size=1 << 20, default_cache_type="bytes",
                                     skip_instance_cache=True)
        from fsspec.implementations.arrow import ArrowFSWrapper
        import pyarrow.fs as pafs
        class Arrow(ArrowFSWrapper):
            protocol = ("s3",)
            @classmethod
            def _strip_protocol(cls, path):
                return path.split("://", 1)[-1]
        return Arrow(pafs.S3FileSystem(access_key={key!r}, secret_key={secret!r},
                                       endpoint_override={endpoint!r}, scheme="http",
                                       region="us-east-1"))
    paths.snapshot_filesystem = plain
t0 = time.perf_counter()
lk = lake.open({uri!r})
lk.sql("SELECT 1")
_result["open"] = time.perf_counter() - t0
answers = []
_result["errors"] = []
for name, q in {questions!r}.items():
    t0 = time.perf_counter()
    try:
        answers.append(lk.sql(q).rows())
    except Exception as exc:  # a path that reads wrong bytes now and then (shared positions)
        _result["errors"].append(f"{{name}}: {{str(exc).splitlines()[0][:80]}}")
        answers.append(None)
        _result[name] = None
        continue
    _result[name] = time.perf_counter() - t0
_result["answers"] = [
    None if a is None else json.dumps(
        sorted([[float(f"{{v:.10g}}") if isinstance(v, float) else v for v in r] for r in a],
               key=str), default=str)
    for a in answers]
"""

INGEST = """
import time, lake
from ingest import remote
_result = {{}}
t0 = time.perf_counter()
report = lake.open({lake!r}).ingest([{source!r}])
_result["total"] = time.perf_counter() - t0
_result["status"] = [o.status for o in report.outcomes]
_result["bytes"] = remote.BYTES_READ[0]
_result["requests"] = remote.REQUESTS[0]
"""


@contextlib.contextmanager
def moto() -> Iterator[dict]:
    """moto's S3 server in its own process with one bucket (the tests' own); its AWS settings."""
    server = MotoS3()
    try:
        yield server.env
    finally:
        server.stop()


def upload(env: dict, local: Path, key: str) -> str:
    """Copy a file or a folder to s3://BUCKET/key; its URI."""
    import s3fs

    fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=env["AWS_ENDPOINT_URL"])
    if local.is_dir():
        fs.put(f"{local}/", f"{BUCKET}/{key}/", recursive=True)
    else:
        fs.put_file(str(local), f"{BUCKET}/{key}")
    return f"s3://{BUCKET}/{key}"


class _Ranges(BaseHTTPRequestHandler):
    """GET with a Range header and HEAD for one file, with a strong ETag (like a web server)."""

    path_on_disk: Path
    etag: str

    def log_message(self, *args) -> None:  # quiet
        return

    def _headers(self, size: int, start: int, end: int, partial: bool) -> None:
        self.send_response(206 if partial else 200)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", self.etag)
        mtime = self.path_on_disk.stat().st_mtime
        self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()

    def _range(self) -> tuple[int, int, int, bool]:
        size = self.path_on_disk.stat().st_size
        header = self.headers.get("Range")
        if not header:
            return size, 0, size, False
        first, _, last = header.removeprefix("bytes=").partition("-")
        return size, int(first), min(int(last) + 1 if last else size, size), True

    def do_HEAD(self) -> None:
        size, start, end, partial = self._range()
        self._headers(size, start, end, partial)

    def do_GET(self) -> None:
        size, start, end, partial = self._range()
        self._headers(size, start, end, partial)
        with open(self.path_on_disk, "rb") as fh:
            fh.seek(start)
            left = end - start
            while left:
                chunk = fh.read(min(left, 8 << 20))
                self.wfile.write(chunk)
                left -= len(chunk)


@contextlib.contextmanager
def http_server(path: Path) -> Iterator[str]:
    """Serve `path` with range requests on 127.0.0.1; its URL."""
    stat = path.stat()
    tag = hashlib.sha256(f"{stat.st_size}-{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    handler = type("Handler", (_Ranges,), {"path_on_disk": path, "etag": f'"{tag}"'})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{path.name}"
    finally:
        server.shutdown()
        server.server_close()


def local_lake() -> Path:
    """The 20 sessions of bench_distributed.py ingested once into a local lake."""
    lake_dir = DATA / "s3-sql-lake"
    if not (lake_dir / "_nplake").is_dir():
        shutil.rmtree(lake_dir, ignore_errors=True)
        code = "import lake\n_result = {}\n"
        code += f"assert lake.open({str(lake_dir)!r}).ingest([{corpus()!r}], jobs=2).ok\n"
        run_child(code)
    return lake_dir


SQL_VARIANTS = ("local", "nplake", "s3fs", "s3fs-1mb-bytes", "arrow")


def bench_sql(env: dict, rounds: int) -> tuple[str, dict]:
    local = local_lake()
    uri = upload(env, local, "sql-lake")
    results: dict[str, list[dict]] = {v: [] for v in SQL_VARIANTS}
    for round_ in range(rounds):
        for variant in SQL_VARIANTS:
            code = SQL.format(
                variant="nplake" if variant == "local" else variant,
                uri=str(local) if variant == "local" else uri,
                key=KEY,
                secret=SECRET,
                endpoint=env["AWS_ENDPOINT_URL"],
                questions=QUESTIONS,
            )
            results[variant].append(run_child(code, **env))
        print(f"sql round {round_ + 1}: " + ", ".join(
            f"{v} {r[-1]['open']:.2f} + {r[-1]['spikes x units'] or float('nan'):.2f}"
            for v, r in results.items()
        ))  # fmt: skip
    for i in range(len(QUESTIONS)):  # every answer a path gave is the local lake's
        given = {r["answers"][i] for v in results.values() for r in v} - {None}
        assert len(given) == 1, f"paths disagree: {given}"
    return uri, results


def bench_ingest(env: dict, rounds: int) -> dict:
    path = Path(session_file("realistic"))
    uri = upload(env, path, f"sources/{path.name}")
    work = DATA / "s3-ingest-work"
    results: dict[str, list[dict]] = {"local": [], "s3": [], "http": []}
    with http_server(path) as url:
        sources = {"local": str(path), "s3": uri, "http": url}
        for round_ in range(rounds):
            for name, source in sources.items():
                lake_dir = work / f"lake-{name}"
                shutil.rmtree(lake_dir, ignore_errors=True)
                result = run_child(INGEST.format(lake=str(lake_dir), source=source), **env)
                assert result["status"] == ["landed"], result
                results[name].append(result)
            print(f"ingest round {round_ + 1}: " + ", ".join(
                f"{k} {v[-1]['total']:.1f} s" for k, v in results.items()
            ))  # fmt: skip
    results["size"] = path.stat().st_size  # type: ignore[assignment]
    return results


def report(sql: dict, ingest: dict, args) -> str:
    t = {
        v: {
            k: median([r[k] for r in rs if r[k] is not None] or [float("nan")])
            for k in ["open", *QUESTIONS]
        }
        for v, rs in sql.items()
    }
    failed = {v: sum(len(r["errors"]) for r in rs) for v, rs in sql.items()}
    runs = {v: len(rs) * len(QUESTIONS) for v, rs in sql.items()}
    names = {
        "local": "local lake",
        "nplake": "**S3, nplake (lake/sql/s3.py)**",
        "s3fs": "S3, plain s3fs registered (the previous path)",
        "s3fs-1mb-bytes": "S3, s3fs with 1 MB blocks, bytes cache",
        "arrow": "S3, pyarrow's S3FileSystem through fsspec",
    }
    header = "| path | open | " + " | ".join(QUESTIONS) + " | total | vs local | failed |"
    lines = [header, "|---|" + "---:|" * (len(QUESTIONS) + 4)]
    base = sum(t["local"].values())
    for v in SQL_VARIANTS:
        total = sum(t[v].values())
        cells = " | ".join(f"{t[v][k]:.3f}" for k in ["open", *QUESTIONS])
        lines.append(
            f"| {names[v]} | {cells} | {total:.2f} | {total / base:.1f}× | "
            f"{failed[v]} of {runs[v]} |"
        )
    size = ingest.pop("size")
    it = {k: median([r["total"] for r in v]) for k, v in ingest.items()}
    each = {k: ", ".join(f"{r['total']:.1f}" for r in v) for k, v in ingest.items()}
    read = {k: ingest[k][0]["bytes"] for k in ingest}
    requests = {k: ingest[k][0]["requests"] for k in ingest}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in ingest.items()}
    rows = "\n".join(
        f"| {label} | {it[k]:.1f} | {each[k]} | {it[k] / it['local']:.1f}× | "
        f"{read[k] / 1e6:,.0f} MB ({read[k] / size:.2f}× the file) | {requests[k]} | "
        f"{rss[k]:,.0f} MB |"
        for k, label in (
            ("local", "local disk"),
            ("s3", "S3 (moto), read in place"),
            ("http", "HTTP (range server started by the benchmark)"),
        )
    )
    return (
        textwrap.dedent(
            f"""
        ## The lake and its sources on S3 (issue 14)

        `python benchmarks/bench_s3.py --sql-rounds {args.sql_rounds} --ingest-rounds
        {args.ingest_rounds}` against moto's S3 server on 127.0.0.1 (a Python process: its
        latency and throughput are not AWS's; what matters here is the number of requests and
        bytes, and the ratio to local disk in the same run). Every measurement is a fresh
        process; variants alternate, medians of the rounds (the machine is shared with other
        test runs). Machine: {machine()}.

        ### SQL: the same 20-session lake, local and on S3

        The lake of bench_distributed.py (20 sessions, one spikes file each) uploaded byte for
        byte. Seconds, median of {args.sql_rounds} rounds; `open` is the first query (log,
        views, materialized views); `failed`: questions that raised, because two DuckDB
        threads moved a file position they share (DuckDB reads a registered filesystem's file
        with a seek, then a read; lake/sql/s3.py keeps one position per thread). Every answer
        given is the local lake's.

        {{sql}}

        DuckDB's httpfs extension cannot be used: `INSTALL httpfs` needs the network, and the
        PyPI wheels that carry it (`duckdb-extension-httpfs` 1.5.5, `duckdb-ext-httpfs` 1.4.4)
        are built for those DuckDB versions: DuckDB 2.0.1 refuses to load them.

        ### Remote NWB ingest: the realistic session read in place

        The session of bench_ingest.py ({size / 1e6:,.0f} MB), median of
        {args.ingest_rounds} rounds; bytes and requests as counted by ingest/remote.py.

        | source | seconds | each | vs local | bytes read from the store | requests | peak RSS |
        |---|---:|---|---:|---:|---:|---:|
        {{ingest}}

        nplake reads {read["s3"] / size:.2f}× the file: spike times and amplitudes are most of
        it and are read once; the rest is HDF5 metadata read again by the spikes and time
        series streams (each reopens the file; segments evicted by the 64 MB spike reads are
        fetched again) and read-ahead past a dataset's end. moto spends about 0.5 s on every
        ranged GET of this object, so the S3 time is mostly moto's; the HTTP server shows
        the reader's own cost. Peak memory is higher than from disk by the reader's segment
        cache (up to 256 MB of fetched segments, kept for the three opens of one file).
        """
        )
        .replace("{sql}", "\n".join(lines))
        .replace("{ingest}", rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sql-rounds", type=int, default=3)
    parser.add_argument("--ingest-rounds", type=int, default=2)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    os.environ.pop("NPLAKE_LAKE", None)
    with moto() as env:
        _, sql = bench_sql(env, args.sql_rounds)
        ingest = bench_ingest(env, args.ingest_rounds)
    table = report(sql, ingest, args)
    print(table)
    if not args.no_doc:
        write_section("s3", table)


if __name__ == "__main__":
    main()
