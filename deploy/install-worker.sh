#!/usr/bin/env bash
# Installs an itervox-worker binary on a build host that is provisioned by other means than the
# controller's own `ssh.install_worker` (configuration management, images, a manual copy).
#
# Usage:
#   install-worker.sh --from PATH|URL [--prefix DIR] [--sha256 HEX] [--expect-version VERSION]
#
#   --from            the binary to install: a local file, or an http(s) URL (needs curl or wget)
#   --prefix          installs into PREFIX/bin (default: /usr/local as root, else ~/.local)
#   --sha256          refuse the binary unless its SHA-256 is HEX (recommended for downloads)
#   --expect-version  refuse the binary unless `itervox-worker version` reports this release
#
# Idempotent: when PREFIX/bin/itervox-worker already has the same contents, nothing changes. The new
# binary is checked (`version` must answer `itervox-worker <version> protocol <N>`), then renamed over
# the old one, so a running worker keeps its file and nothing is ever half-written.
set -euo pipefail

NAME=itervox-worker
from=""
prefix=""
want_sha=""
want_version=""

die() {
  echo "install-worker.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --from|--prefix|--sha256|--expect-version)
      [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"
      case "$1" in
        --from) from="$2" ;;
        --prefix) prefix="$2" ;;
        --sha256) want_sha="$2" ;;
        --expect-version) want_version="$2" ;;
      esac
      shift 2
      ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[ -n "$from" ] || die "--from is required: a path or URL of the itervox-worker binary"
if [ -z "$prefix" ]; then
  if [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "neither sha256sum nor shasum is installed"
  fi
}

bindir="$prefix/bin"
target="$bindir/$NAME"
mkdir -p "$bindir"
tmp="$(mktemp "$bindir/.$NAME.install.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

case "$from" in
  http://*|https://*)
    if command -v curl >/dev/null 2>&1; then
      curl -fsSL --retry 3 -o "$tmp" "$from" || die "downloading $from failed"
    elif command -v wget >/dev/null 2>&1; then
      wget -q -O "$tmp" "$from" || die "downloading $from failed"
    else
      die "downloading needs curl or wget"
    fi
    ;;
  *)
    [ -f "$from" ] || die "$from is not a file"
    cp "$from" "$tmp"
    ;;
esac

sum="$(sha256_of "$tmp")"
if [ -n "$want_sha" ] && [ "$sum" != "$want_sha" ]; then
  die "$from has SHA-256 $sum, expected $want_sha"
fi
chmod 755 "$tmp"

reported="$("$tmp" version 2>/dev/null </dev/null | head -n 1 || true)"
read -r word version proto_word protocol _ <<<"$reported" || true
if [ "${word:-}" != "$NAME" ] || [ "${proto_word:-}" != protocol ] || [ -z "${protocol:-}" ]; then
  die "$from does not look like an itervox-worker for this machine: \`version\` said '${reported}'"
fi
if [ -n "$want_version" ] && [ "$version" != "$want_version" ]; then
  die "$from is itervox-worker $version, expected $want_version"
fi

if [ -f "$target" ] && [ "$(sha256_of "$target")" = "$sum" ]; then
  echo "$target is already $reported"
else
  mv -f "$tmp" "$target"
  echo "installed $target: $("$target" version </dev/null)"
fi

case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo "note: $bindir is not on PATH; set ssh.worker_path to $target in WORKFLOW.md, or add $bindir to the login PATH" >&2 ;;
esac
