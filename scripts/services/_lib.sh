# Shared by the service scripts: where server data lives, and package installation.
export PATH="$PATH:/usr/sbin:/sbin"
SERVICES_DIR="${EFFECT_SESSION_SERVICES_DIR:-/tmp/effect-session-services}"
mkdir -p "$SERVICES_DIR"

# Installs Debian packages when a command is missing (CI runs as root on a clean machine).
ensure_packages() {
  local command_name="$1"
  shift
  if ! command -v "$command_name" >/dev/null 2>&1 && [ ! -x "$command_name" ]; then
    if [ ! -f "$SERVICES_DIR/.apt-updated" ]; then
      apt-get update -qq
      touch "$SERVICES_DIR/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

# Waits until a command succeeds, for at most 60 seconds.
wait_for() {
  local what="$1"
  shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "$what did not come up" >&2
  return 1
}
