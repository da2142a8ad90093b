"""Renders deploy/nginx/marketplace.conf.in into a site file.

    python deploy/render.py --env /etc/marketplace/marketplace.env --tls \
        --server-name api.example.com > /etc/nginx/sites-available/marketplace

Values come from the environment file, then the command line; `make staging`
(scripts/staging.py) renders the same template on loopback ports without TLS."""

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx") / "marketplace.conf.in"
DEFAULT_MAX_BODY = 110 * 1024 * 1024
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def render(
    *,
    env: dict[str, str],
    listen: str,
    server_name: str,
    daphne_ports: list[int],
    log_dir: str,
    static_root: str,
    tls: tuple[str, str] | None = None,
    metrics_allow: list[str] | None = None,
) -> str:
    media_root = env.get("MEDIA_ROOT") or (env.get("MARKETPLACE_VAR_DIR", "var") + "/media")
    private_root = env.get("PRIVATE_MEDIA_ROOT") or (
        env.get("MARKETPLACE_VAR_DIR", "var") + "/private-media"
    )
    if tls:
        certificate, key = tls
        listen_lines = f"listen {listen} ssl http2;"
        tls_lines = (
            f"ssl_certificate {certificate};\n    ssl_certificate_key {key};\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:marketplace:10m;"
        )
        redirect = (
            "server {\n    listen 80;\n    server_name " + server_name + ";\n"
            "    # Plain-HTTP probes of the load balancer still reach /healthz and /readyz.\n"
            "    location ~ ^/(healthz|readyz)$ {\n"
            "        proxy_set_header Host $host;\n"
            "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "        proxy_set_header X-Forwarded-Proto $scheme;\n"
            "        proxy_set_header X-Request-ID $request_id_or_new;\n"
            "        proxy_pass http://marketplace_gunicorn;\n    }\n"
            "    location / { return 301 https://$host$request_uri; }\n}"
        )
    else:
        listen_lines = f"listen {listen};"
        tls_lines = "# No TLS on this listener (staging on loopback)."
        redirect = ""
    allow = metrics_allow if metrics_allow is not None else ["127.0.0.1", "::1"]
    values = {
        "GUNICORN_ADDRESS": env.get("GUNICORN_BIND", "127.0.0.1:8000"),
        "DAPHNE_SERVERS": "\n    ".join(f"server 127.0.0.1:{port};" for port in daphne_ports),
        "HTTP_REDIRECT_SERVER": redirect,
        "LISTEN": listen_lines,
        "SERVER_NAME": server_name,
        "TLS": tls_lines,
        "MAX_REQUEST_BODY_BYTES": env.get("MAX_REQUEST_BODY_BYTES", str(DEFAULT_MAX_BODY)),
        "LOG_DIR": log_dir,
        "STATIC_ROOT": static_root.rstrip("/"),
        "MEDIA_ROOT": media_root.rstrip("/"),
        "PRIVATE_MEDIA_ROOT": private_root.rstrip("/"),
        "METRICS_ALLOW": "\n        ".join(f"allow {address};" for address in allow),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = {m for line in text.splitlines() for m in _PLACEHOLDER.findall(line.split("#")[0])}
    if left:
        raise ValueError(f"unrendered placeholders in the nginx site: {sorted(left)}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", type=Path, required=True, help="the environment file")
    parser.add_argument("--server-name", default="_")
    parser.add_argument("--listen", default="443")
    parser.add_argument("--tls", action="store_true", help="listen with TLS (production)")
    parser.add_argument("--certificate", default="/etc/letsencrypt/live/marketplace/fullchain.pem")
    parser.add_argument(
        "--certificate-key", default="/etc/letsencrypt/live/marketplace/privkey.pem"
    )
    parser.add_argument("--daphne-port", type=int, action="append", default=None)
    parser.add_argument("--log-dir", default="/var/log/nginx")
    parser.add_argument("--static-root", default=None, help="default: STATIC_ROOT of --env")
    parser.add_argument("--metrics-allow", action="append", default=None)
    args = parser.parse_args()
    env = read_env_file(args.env)
    sys.stdout.write(
        render(
            env=env,
            listen=args.listen,
            server_name=args.server_name,
            daphne_ports=args.daphne_port or [8001, 8002],
            log_dir=args.log_dir,
            static_root=args.static_root
            or env.get("STATIC_ROOT", "/srv/marketplace/app/staticfiles"),
            tls=(args.certificate, args.certificate_key) if args.tls else None,
            metrics_allow=args.metrics_allow,
        )
    )


if __name__ == "__main__":
    main()
