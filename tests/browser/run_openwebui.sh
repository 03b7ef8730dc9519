#!/usr/bin/env bash
# Browser job (not part of .ci/run): Open WebUI in Debian's Chromium, talking to o3-pro through the proxy.
#
# Starts the fake Responses upstream and the proxy (stack.py), starts Open WebUI with its OpenAI connection
# pointed at the proxy and everything that reaches the internet turned off, then drives it headless with
# openwebui.mjs and saves docs/open-webui.png. Needs, once:
#   python3 -m venv .webui-venv && .webui-venv/bin/pip install -r tests/browser/requirements.lock
#   apt-get install -y chromium
#   (cd tests/browser && npm ci)
# Environment: PROXY_PYTHON (a Python with the project's dependencies, default: python3),
# WEBUI_VENV (default: .webui-venv), PROXY_PORT (18080), WEBUI_PORT (18081), SCREENSHOT (docs/open-webui.png).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROXY_PYTHON=${PROXY_PYTHON:-python3}
WEBUI_VENV=${WEBUI_VENV:-$ROOT/.webui-venv}
PROXY_PORT=${PROXY_PORT:-18080}
WEBUI_PORT=${WEBUI_PORT:-18081}
SCREENSHOT=${SCREENSHOT:-$ROOT/docs/open-webui.png}
WORK=$ROOT/tests/browser/work
STARTUP_SECONDS=180

for need in "$WEBUI_VENV/bin/open-webui" /usr/bin/chromium "$ROOT/tests/browser/node_modules/playwright-core"; do
    [ -e "$need" ] || { echo "missing $need: see the set-up lines at the top of $0" >&2; exit 1; }
done

rm -rf "$WORK" && mkdir -p "$WORK/data" "$(dirname "$SCREENSHOT")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() {  # URL, name, log file
    for _ in $(seq "$STARTUP_SECONDS"); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 1
    done
    echo "$2 did not start within ${STARTUP_SECONDS}s; its log:" >&2
    tail -50 "$3" >&2
    exit 1
}

PYTHONPATH=$ROOT "$PROXY_PYTHON" tests/browser/stack.py --port "$PROXY_PORT" > "$WORK/stack.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$PROXY_PORT/healthz" "the proxy" "$WORK/stack.log"

# Open WebUI, offline: no Ollama, no embedding model download, no task-model requests, no update checks.
env DATA_DIR="$WORK/data" WEBUI_SECRET_KEY=browser-job-secret-not-for-production \
    OPENAI_API_BASE_URL="http://127.0.0.1:$PROXY_PORT/v1" OPENAI_API_KEY=x \
    ENABLE_OLLAMA_API=false OFFLINE_MODE=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    RAG_EMBEDDING_MODEL= BYPASS_EMBEDDING_AND_RETRIEVAL=true \
    ENABLE_TITLE_GENERATION=false ENABLE_TAGS_GENERATION=false ENABLE_FOLLOW_UP_GENERATION=false \
    ENABLE_VERSION_UPDATE_CHECK=false ANONYMIZED_TELEMETRY=false DO_NOT_TRACK=true SCARF_NO_ANALYTICS=true \
    "$WEBUI_VENV/bin/open-webui" serve --host 127.0.0.1 --port "$WEBUI_PORT" > "$WORK/webui.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$WEBUI_PORT/health" "Open WebUI" "$WORK/webui.log"

timeout 300 node tests/browser/openwebui.mjs "http://127.0.0.1:$WEBUI_PORT/" "$SCREENSHOT"
grep -q '"POST /v1/chat/completions HTTP/1.1" 200' "$WORK/stack.log" \
    || { echo "Open WebUI's chat request never reached the proxy" >&2; exit 1; }
echo "browser job passed: $SCREENSHOT"
