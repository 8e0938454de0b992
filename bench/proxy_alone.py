"""supervisor_pd's inference proxy on its own, in front of any upstream, for the benchmarks.

    python bench/proxy_alone.py UPSTREAM_PORT PORT

The same `Proxy` class and error middleware the supervisor serves, without the supervision
loop, so the figures are the proxy's own cost and the process can be pinned to one CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisor_pd.api.metrics import ProxyMetrics
from supervisor_pd.api.proxy import Proxy
from supervisor_pd.api.server import errors
from supervisor_pd.plan.model import TlsLink, TlsPlan
from supervisor_pd.settings import load_settings


def main() -> None:
    upstream, port = int(sys.argv[1]), int(sys.argv[2])
    plan = SimpleNamespace(
        coordinator=SimpleNamespace(predict_ip="127.0.0.1", predict_port=upstream),
        model_name="m",
        max_seq_len=2048,
        tls=TlsPlan(
            mode="off",
            mode_source="bench",
            links=(TlsLink(key="coordinator_predict", link="", encrypted=False, switches=()),),
        ),
    )
    proxy = Proxy(plan, load_settings(), ProxyMetrics(CollectorRegistry()))  # type: ignore[arg-type]
    app = web.Application(middlewares=[errors], client_max_size=1 << 20)
    proxy.add_routes(app)

    async def started(_: web.Application) -> None:
        await proxy.start()

    async def stopped(_: web.Application) -> None:
        await proxy.close()

    app.on_startup.append(started)
    app.on_cleanup.append(stopped)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handler_cancellation=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main()
