# Sourced by scripts/bench.sh and scripts/profile.sh: the "every protection on" part of a
# palisade config, so that the load benchmark and the instruction profile measure the same
# gateway.
#
# full_protection_yaml PARANOIA RULES_DIR KEY_FILE
#   prints, to follow a route's `upstream:` line (its first three lines are that route's keys):
#   a rate limit and a usage plan far above any load, an API key required (`x-api-key`), the WAF
#   in block mode at PARANOIA with threshold 5, an IP deny list, per-IP and global limits, a
#   per-IP connection cap. The caller adds its own `analytics:` section.
full_protection_yaml() {
  local pl=$1 rules=$2 keys=$3
  cat <<EOF
    rate_limit: {per_second: 1000000, burst: 1000000}
    api_key: {header: x-api-key}
    waf: {mode: block, paranoia: $pl, threshold: 5}
waf:
  rules_dir: $rules
  defaults: {mode: block, paranoia: $pl, threshold: 5}
guard:
  ip:
    deny: [203.0.113.0/24, "2001:db8::/32"]
  throttle:
    per_ip: {per_second: 1000000, burst: 1000000}
    global: {per_second: 1000000, burst: 1000000}
  connections:
    max_per_ip: 4096
api_keys:
  key_file: $keys
  plans:
    - name: bench
      rate: 1000000
      burst: 1000000
      quota: {limit: 1000000000000, period: month}
EOF
}
