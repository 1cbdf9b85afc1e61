"""Memory of a long-lived server: many sample rates through one process, and the web page under load.

``rates``: ``asteroid-unet app`` on 127.0.0.1; one API client separates a 0.3 s stereo clip at each
of ``--rates`` distinct sample rates (8 to 48 kHz) with ``--model``, and the page's RSS is read after
10 rates and after all of them (the separator cache keeps only the most recent few).

``load``: ``asteroid-unet app`` on 127.0.0.1; ``--clients`` gradio_client visitors (each keeps a
heartbeat, as a tab does) send a 10-second stereo song each, ``--rounds`` times over; the peak RSS
of the server and its children, and every stem checked byte for byte against ``separate_file``.

    python -m benchmarks.page_load rates --rates 100     # writes benchmarks/results/page-rates.json
    python -m benchmarks.page_load load --clients 8 --rounds 3   # writes benchmarks/results/page-load.json
"""
import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """The CPU's model name and core count (the page runs on the CPU)."""
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    except OSError:
        names = []
    return f"{os.cpu_count()} cores, {names[0] if names else platform.machine()}"


def rss(proc: psutil.Process) -> int:
    """RSS of ``proc`` and its children, in bytes."""
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


@contextlib.contextmanager
def page(tmp: Path):
    """``asteroid-unet app --max-seconds 60`` on a free port of 127.0.0.1: yields its URL and process."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp / "gradio"), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "asteroid_unet", "app", "--port", str(port), "--max-seconds", "60"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                httpx.get(url, trust_env=False)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def rss_over_rates(model: str, count: int) -> dict:
    """The page's RSS (MB) after 10 and after ``count`` sample rates: one API client (plain HTTP,
    keeping its owner cookie) separates a new 0.3 s stereo clip at each rate, 8 to 48 kHz."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="page-rates-"))
    rates = [8000 + round(i * 40000 / max(count - 1, 1)) for i in range(count)]
    with page(tmp) as (url, server), httpx.Client(timeout=120, trust_env=False) as client:
        fn = {d["api_name"]: d["id"] for d in client.get(url + "config").json()["dependencies"] if d.get("api_name")}

        def call(api: str, data: list) -> list:
            body = {"data": data, "fn_index": fn[api], "session_hash": "rates", "event_data": None, "trigger_id": None}
            event = client.post(url + "gradio_api/queue/join", json=body).json()["event_id"]
            with client.stream("GET", url + "gradio_api/queue/data", params={"session_hash": "rates"}) as stream:
                for line in stream.iter_lines():
                    message = json.loads(line[5:]) if line.startswith("data:") else {}
                    if message.get("event_id") == event and message.get("msg") == "process_completed":
                        return message["output"]["data"]
            raise RuntimeError("no result")

        measured, start = {}, time.monotonic()
        for n, rate in enumerate(rates, 1):
            clip = song(tmp / f"{rate}.wav", seed=n, seconds=0.3, rate=rate)
            with clip.open("rb") as f:
                uploaded = client.post(url + "gradio_api/upload", files={"files": (clip.name, f)}).json()[0]
            kept = call("keep", [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}])[0]
            status = call("run", [kept, None, model, "wav"])[0]
            assert status.startswith("Separated"), status
            if n in (10, count):
                measured[n] = rss(server) / 2**20
    return {"model": model, "rates": count, "rss_mb_after_10": round(measured[10]),
            f"rss_mb_after_{count}": round(measured[count]), "growth_mb": round(measured[count] - measured[10]),
            "seconds": round(time.monotonic() - start, 1)}


def song(path: Path, seed: int, seconds: float = 10.0, rate: int = 22050) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t)
    sf.write(str(path), (np.stack([tone, 0.8 * tone], 1) + 0.05 * rng.standard_normal((t.size, 2))).astype(np.float32),
             rate, subtype="PCM_16")
    return path


def page_under_load(clients: int, rounds: int) -> dict:
    """Peak RSS (MB) of the page serving ``clients`` visitors at once, ``rounds`` times; stems checked."""
    import httpx
    from gradio_client import Client, handle_file

    from asteroid_unet.model import load_model
    from asteroid_unet.separate import separate_file

    tmp = Path(tempfile.mkdtemp(prefix="page-load-"))
    songs = [song(tmp / f"song {i}.wav", seed=10 + i) for i in range(clients)]
    model = load_model("spleeter-2stems")
    reference = [{k: p.read_bytes() for k, p in separate_file(s, tmp / "reference", model).items()} for s in songs]
    with page(tmp) as (url, server):
        peak, done = [0], threading.Event()

        def watch():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], rss(server))
                except psutil.Error:
                    pass
                time.sleep(0.1)

        def visit(i: int) -> bool:
            client = Client(url, download_files=False, verbose=False)
            try:
                out = client.predict(handle_file(str(songs[i])), None, "spleeter-2stems", "wav", api_name="/run")
                return all(httpx.get(out[1 + j]["url"], trust_env=False).content == reference[i][name]
                           for j, name in enumerate(("vocals", "accompaniment"), 1))
            finally:
                client.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        start, equal = time.monotonic(), []
        try:
            for _ in range(rounds):
                with ThreadPoolExecutor(clients) as pool:
                    equal += list(pool.map(visit, range(clients)))
        finally:
            done.set()
            watcher.join()
    return {"clients": clients, "rounds": rounds, "peak_rss_mb": round(peak[0] / 2**20),
            "stems_byte_equal": f"{sum(equal)}/{len(equal)}", "seconds": round(time.monotonic() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="case", required=True)
    rates = sub.add_parser("rates", help="the page's RSS after 10 and after --rates sample rates")
    rates.add_argument("--rates", type=int, default=100)
    rates.add_argument("--model", default="paper")
    load = sub.add_parser("load", help="the page's peak RSS under concurrent visitors")
    load.add_argument("--clients", type=int, default=8)
    load.add_argument("--rounds", type=int, default=3)
    for case in (rates, load):
        case.add_argument("--json", type=Path, default=None,
                          help="where to write the result (default: benchmarks/results/page-<case>.json)")
    args = parser.parse_args(argv)
    if args.case == "rates":
        result = rss_over_rates(args.model, args.rates)
    else:
        result = page_under_load(args.clients, args.rounds)
    result["machine"] = machine()
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    out = args.json or ROOT / "benchmarks" / "results" / f"page-{args.case}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
