#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need when it is missing (git, OpenSSH server,
# iproute2, tmux, shellcheck, Chromium + ChromeDriver, the pinned agent CLIs), builds the binaries the
# end-to-end tests drive, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# sshd's privilege-separation directory.
[ -d /run/sshd ] || as_root mkdir -p /run/sshd

# Pinned agent CLIs for the real-backend tests, installed into a cache folder the tests find.
AGENT_CLI_DIR="${ITERVOX_AGENT_CLI_DIR:-$HOME/.cache/itervox-agent-clis}"
export ITERVOX_AGENT_CLI_DIR="$AGENT_CLI_DIR"
if command -v npm >/dev/null 2>&1; then
  if [ ! -x "$AGENT_CLI_DIR/node_modules/.bin/claude" ] || [ ! -x "$AGENT_CLI_DIR/node_modules/.bin/codex" ]; then
    echo "test.sh: installing @anthropic-ai/claude-code@2.1.332 and @openai/codex@0.171.0 into $AGENT_CLI_DIR"
    mkdir -p "$AGENT_CLI_DIR"
    (cd "$AGENT_CLI_DIR" && npm install --no-audit --no-fund --loglevel=error \
      @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 >/dev/null)
  fi
fi

shellcheck deploy/*.sh scripts/*.sh .ci/run

cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --profile ci "$@"
else
  cargo test --workspace "$@"
fi
