# Shared by bin/run and bin/test: make .venv with livecore installed, idempotently.
# Sourced, not run. Needs Python 3.11 with pip; installs python3-venv with apt when missing.

LIVECORE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$LIVECORE_ROOT/.venv"

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "livecore needs Python 3.11 (python3.11 or python3 on PATH)" >&2
  return 1
}

apt_updated=""
apt_install() {
  # Install Debian packages when missing; only root can, others are told what to install.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "livecore needs these Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  echo "installing ${missing[*]} with apt" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_web() {
  # hls.js for the watch page, Chart.js for the Money page's charts and axe-core for the
  # browser tests' accessibility checks, from npm (web/package-lock.json); nodejs/npm via apt
  # if missing.
  [ -f "$LIVECORE_ROOT/web/node_modules/hls.js/dist/hls.min.js" ] \
    && [ -f "$LIVECORE_ROOT/web/node_modules/chart.js/dist/chart.umd.min.js" ] \
    && [ -f "$LIVECORE_ROOT/web/node_modules/axe-core/axe.min.js" ] && return 0
  command -v npm >/dev/null 2>&1 || apt_install npm || return 1
  npm ci --prefix "$LIVECORE_ROOT/web" --no-audit --no-fund >&2
}

ensure_venv() {
  # $1: pip extras ("" or "test"). Reinstalls only when pyproject.toml or the extras change.
  local extras="$1" python stamp want
  python=$(find_python) || return 1
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv || return 1
      "$python" -m venv "$VENV"
    fi
  fi
  stamp="$VENV/.livecore-installed"
  want="$(sha256sum "$LIVECORE_ROOT/pyproject.toml" | cut -d' ' -f1) extras=$extras"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    local target="$LIVECORE_ROOT"
    [ -n "$extras" ] && target="$LIVECORE_ROOT[$extras]"
    "$VENV/bin/python" -m pip install -q -e "$target" >&2
    echo "$want" >"$stamp"
  fi
}
