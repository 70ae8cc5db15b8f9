"""`make run`: migrate, seed the demo, then run Redis (embedded, unless REDIS_URL is set),
the ASGI server, a Celery worker, Celery beat and the venues' user-data streams
(manage.py venue_streams) together under honcho. Ctrl-C stops all."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", "6390")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "32")))
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("ALPHA_ENV", "development")
    embedded = "REDIS_URL" not in env
    if embedded:
        env["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}/0"
    # honcho sets PORT for each process itself, so the web port travels as WEB_PORT.
    env.update(WEB_HOST=args.host, WEB_PORT=str(args.port), WORKER_CONCURRENCY=str(args.concurrency),
               EMBEDDED_REDIS_PORT=str(args.redis_port), PYTHONUNBUFFERED="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # One process for HTTP and websockets: the production websocket server (gunicorn +
    # uvicorn, alpha_platform/gunicorn_ws_conf.py), which answers HTTP too, with one worker by
    # default: the embedded run shares the machine with its workers; requests logged.
    env.setdefault("WEB_CONCURRENCY", "1")
    env.setdefault("WEB_ACCESS_LOG", "-")

    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["check_config"], check=True, env=env, cwd=ROOT)
    subprocess.run(manage + ["migrate", "--noinput", "-v", "0"], check=True, env=env, cwd=ROOT)
    # Redis is not up yet: the seed's live-update pushes have nobody to reach.
    subprocess.run(manage + ["seed_demo", "--url", f"http://{args.host}:{args.port}"],
                   check=True, env={**env, "REALTIME_ENABLED": "false"}, cwd=ROOT)

    processes = (["redis"] if embedded else []) + ["web", "worker", "beat", "streams"]
    print(f"Starting {', '.join(processes)} (Ctrl-C stops all)", flush=True)
    os.execve(str(BIN / "honcho"), ["honcho", "-f", str(ROOT / "Procfile"), "start", *processes], env)


if __name__ == "__main__":
    main()
