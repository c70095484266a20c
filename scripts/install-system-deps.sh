#!/usr/bin/env bash
# Installs the Debian packages wsgid's examples, tests and benchmark use, when they are missing:
# mongrel2 (mongrel2-core), wrk, curl, sqlite3 (`wsgid check` reads mongrel2's config.sqlite),
# nginx-light (the bench's front server before the reference servers), chromium (the browser suite
# drives Debian's Chromium with playwright-core; no browser download), iproute2 (network-namespace
# tests), systemd's tools
# (systemd-analyze verifies the generated unit, systemd-notify is the notify fallback; the package
# installs without starting anything), setpriv (util-linux), the system Python's Django, Flask
# and gunicorn (WSGI tests and the gunicorn comparison), FastAPI, Starlette, python-multipart,
# websockets and uvicorn (ASGI tests and the uvicorn comparison), and prometheus_client (its parser
# checks wsgid's /metrics text in the tests). Needs root (or sudo).
set -euo pipefail

need=()
command -v mongrel2 >/dev/null || need+=(mongrel2-core)
command -v m2sh >/dev/null || need+=(mongrel2-core)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v ip >/dev/null || need+=(iproute2)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v systemd-notify >/dev/null || need+=(systemd)
command -v setpriv >/dev/null || need+=(util-linux)
command -v make >/dev/null || need+=(make)
command -v g++ >/dev/null || need+=(g++)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 -c 'import django' 2>/dev/null || need+=(python3-django)
  /usr/bin/python3 -c 'import flask' 2>/dev/null || need+=(python3-flask)
  /usr/bin/python3 -c 'import gunicorn' 2>/dev/null || need+=(python3-gunicorn)
  /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || need+=(python3-prometheus-client)
  /usr/bin/python3 -c 'import fastapi' 2>/dev/null || need+=(python3-fastapi)
  /usr/bin/python3 -c 'import starlette' 2>/dev/null || need+=(python3-starlette)
  /usr/bin/python3 -c 'import uvicorn' 2>/dev/null || need+=(python3-uvicorn)
  /usr/bin/python3 -c 'import multipart' 2>/dev/null || need+=(python3-multipart)
  /usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
else
  need+=(python3-django python3-flask python3-gunicorn python3-prometheus-client python3-fastapi python3-starlette python3-uvicorn python3-multipart python3-websockets)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "system packages: installing ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
