# shellcheck shell=bash
# Shared by the install scripts: `apt_install NAME PKG...` installs Debian packages
# non-interactively, with sudo only when not root, refreshing the package lists only when an
# install fails without them. NAME prefixes messages.

apt_install() {
  local name="$1"
  shift
  export DEBIAN_FRONTEND=noninteractive
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "${name}: not root and no sudo; cannot install $*" >&2
      return 1
    fi
  fi
  echo "${name}: installing $*"
  if ! $sudo apt-get install -y --no-install-recommends "$@"; then
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "$@"
  fi
}
