"""`junto serve`: the routed OpenAI-compatible HTTP gateway."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Optional

import typer

from junto.cli.common import err_console, handle_errors
from junto.errors import ConfigError

serve_app = typer.Typer()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@serve_app.command("serve")
@handle_errors
def serve(
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="junto config or pool file, or a built-in pool name")] = None,
    host: Annotated[Optional[str], typer.Option(help="address to bind [default: from config, 127.0.0.1]")] = None,
    port: Annotated[Optional[int], typer.Option(min=0, max=65535, help="port [default: from config, 8000]")] = None,
    allow_unauthenticated_public: Annotated[bool, typer.Option(
        "--allow-unauthenticated-public", help="listen beyond loopback with no API key (not recommended)")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve chat completions: model `junto-auto` routes, `junto-<strategy>` reasons, a deployment name pins."""
    import uvicorn

    from junto.facade import Junto
    from junto.gateway.app import build_keys, create_app

    junto = Junto.from_config(config)
    settings = junto.config.gateway
    host = host or settings.host
    port = settings.port if port is None else port
    if not is_loopback(host) and not build_keys(settings).enabled and not (
            allow_unauthenticated_public or settings.allow_unauthenticated_public):
        raise ConfigError(
            f"refusing to listen on {host} with no API key configured: anyone who can reach it could use the pool",
            hint="set JUNTO_API_KEYS (comma-separated keys) or gateway.api_keys in the config; "
                 "or bind 127.0.0.1; or pass --allow-unauthenticated-public")
    app = create_app(junto, settings)
    err_console.print(f"[dim]junto gateway for pool {junto.pool.name!r} on http://{host}:{port}/v1 "
                      f"(models: junto-auto, junto-<strategy>, or a deployment name)[/]")
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=settings.graceful_shutdown_s,
                access_log=False, lifespan="on")
