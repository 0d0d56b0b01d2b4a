#!/usr/bin/env bash
# Starts a private instance of the peer baseline (nginx + ModSecurity v3 + OWASP CRS, from
# ../shared/peers/nginx-modsec) for scripts/bench.sh and scripts/detect_compare.py, leaving the
# shared peer on 18180/18181 alone (others measure against it, and its start.sh restarts it).
#
# usage: scripts/peer-modsec.sh DIR PORT PARANOIA
#   DIR       a fresh directory: the configs, pid file, logs and temp files go there
#   PORT      nginx + ModSecurity + CRS listens on 127.0.0.1:PORT (the peer's plain proxy on PORT+50)
#   PARANOIA  CRS paranoia level (1-4)
# The configs are the peer's nginx.conf and modsec-main.conf with the ports, the paths and the
# paranoia level substituted, nothing else, except (PEER_BODY_PROCESSORS=1, the default) Debian's
# JSON and XML body-processor rules 200000/200001 from /etc/nginx/modsecurity.conf (ModSecurity's
# recommended config) inserted before the CRS: without them ModSecurity v3 parses neither JSON nor
# XML bodies and CRS never sees their fields. PIN_CPU=N pins the nginx processes to CPU N.
# Upstream: the peer's nginx on 127.0.0.1:18080 (started with the peer's start.sh when it is down).
# Stop it with: kill "$(cat DIR/nginx.pid)".
set -euo pipefail

[ $# -eq 3 ] || { sed -n '6,9p' "$0" >&2; exit 2; }
dir=$1 port=$2 pl=$3
root=$(cd "$(dirname "$0")/.." && pwd)
peer_dir=$(cd "$root/../shared/peers/nginx-modsec" 2>/dev/null && pwd || echo /work/shared/peers/nginx-modsec)
[ -f "$peer_dir/nginx.conf" ] || { echo "peer-modsec.sh: no peer in $peer_dir" >&2; exit 1; }
case "$pl" in 1|2|3|4) ;; *) echo "peer-modsec.sh: paranoia must be 1-4, not '$pl'" >&2; exit 2 ;; esac

up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" != 000 ]; }
if ! [ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || ! up http://127.0.0.1:18080/; then
  "$peer_dir/start.sh" 1 >/dev/null # installs the packages and starts the upstream (and the shared peer)
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
chmod 755 "$dir" # nginx workers (www-data) create temp files below it
sed "s/PARANOIA/$pl/; s#/tmp/peer-modsec#$dir#g" "$peer_dir/modsec-main.conf" >"$dir/modsec-main.conf"
if [ "${PEER_BODY_PROCESSORS:-1}" = 1 ]; then
  python3 - "$dir/modsec-main.conf" <<'PY'
import sys
p = sys.argv[1]
text = open(p).read()
rules = (
    "# Debian's /etc/nginx/modsecurity.conf rules 200000/200001 (added by scripts/peer-modsec.sh)\n"
    'SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" '
    "\"id:'200000',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML\"\n"
    'SecRule REQUEST_HEADERS:Content-Type "^application/json" '
    "\"id:'200001',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON\"\n"
)
anchor = "Include /etc/modsecurity/crs/crs-setup.conf"
i = text.index(anchor)
open(p, "w").write(text[:i] + rules + text[i:])
PY
fi
sed "s#/tmp/peer-modsec#$dir#g; s/18180/$port/; s/18181/$((port + 50))/" \
  "$peer_dir/nginx.conf" >"$dir/nginx.conf"
if [ -n "${PIN_CPU:-}" ] && command -v taskset >/dev/null 2>&1; then
  taskset -c "$PIN_CPU" nginx -c "$dir/nginx.conf"
else
  nginx -c "$dir/nginx.conf"
fi
for _ in $(seq 1 50); do
  up "http://127.0.0.1:$port/" && exit 0
  sleep 0.2
done
echo "peer-modsec.sh: nginx+modsecurity did not come up on :$port; see $dir/error.log" >&2
exit 1
