# Sourced by scripts/bench.sh and scripts/race-builds.sh: the request shapes of the load
# benchmarks, so that every script sends the same requests.
#
# write_bodies DIR        writes DIR/post4k.json and DIR/post64k.json (JSON orders of exactly 4 KiB
#                         and 64 KiB: items with ids, SKUs, names, prices, tags and a short note)
# shape_method SHAPE, shape_path SHAPE
# write_lua SHAPE KEY     the wrk script of a shape in $work/SHAPE.lua (bodies read from $work)
# status_of SHAPE PORT KEY  the status one request of the shape gets (curl, the same request)
# palisade_config ID PORT ADMIN_PORT KIND PARANOIA  writes $work/ID/palisade.yaml: one route to
#                         $UPSTREAM; KIND `off` (every stage off), `analytics` (off but analytics)
#                         or `full` (every protection, scripts/lib/full-protection.sh); analytics
#                         to $CLICKHOUSE_URL ($ch_db), or to the upstream when $ANALYTICS_DEST is
#                         `discard`. Needs $root, $work, $UPSTREAM, $ch_db, $ANALYTICS_DEST.
# Shapes: get, args (10 query arguments, 5 cookies), post4k, post64k, attack (a UNION SELECT).

write_bodies() {
  python3 - "$1" <<'PY'
import json, sys
work = sys.argv[1]
words = ("order shipment customer invoice warehouse delivery tracking parcel express standard "
         "return refund discount coupon payment card wallet address street city postal country").split()
def body(target):
    items, i = [], 0
    while True:
        items.append({
            "id": 100000 + i,
            "sku": f"SKU-{i % 997:04d}-{(i * 7) % 13}",
            "name": f"{words[i % len(words)].title()} {words[(i * 3) % len(words)]} item {i}",
            "quantity": i % 9 + 1,
            "price": round(3.5 + (i * 1.37) % 250, 2),
            "tags": [words[(i + k) % len(words)] for k in range(3)],
            "note": f"Please {words[(i * 5) % len(words)]} the {words[(i * 11) % len(words)]} before noon",
            "gift": i % 4 == 0,
        })
        i += 1
        doc = {"customer": {"name": "Maria Lopez", "email": "maria.lopez@example.com",
                            "city": "Valencia", "loyalty": "gold"},
               "currency": "EUR", "items": items}
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) >= target:
            break
    # pad the last note so the body is exactly `target` bytes
    doc["padding"] = ""
    text = json.dumps(doc, separators=(",", ":"))
    while len(text) > target and items:
        items.pop()
        text = json.dumps(doc, separators=(",", ":"))
    doc["padding"] = "x" * (target - len(text))
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text) == target, (len(text), target)
    return text
for name, size in (("post4k", 4096), ("post64k", 65536)):
    open(f"{work}/{name}.json", "w").write(body(size))
PY
}

ua="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
args_path="/search?q=laptop+bag&category=electronics&brand=acme&min_price=100&max_price=2000&sort=price_asc&page=2&per_page=50&color=silver&in_stock=true"
cookies="session=3f9a1c77e2b54d0c9e8f1a2b3c4d5e6f; theme=dark; lang=en-US; cart_id=98765; consent=analytics"
attack_path="/search?q=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--%20&page=1"

shape_method() { case "$1" in post4k|post64k) echo POST ;; *) echo GET ;; esac; }
shape_path() { case "$1" in args) echo "$args_path" ;; attack) echo "$attack_path" ;; post*) echo /api/orders ;; *) echo / ;; esac; }

# write_lua SHAPE KEY: the wrk script of a shape.
write_lua() {
  local shape=$1 key=$2 f="$work/$1.lua"
  {
    echo "wrk.method = \"$(shape_method "$shape")\""
    echo "wrk.path = \"$(shape_path "$shape")\""
    echo "wrk.headers[\"User-Agent\"] = \"$ua\""
    echo "wrk.headers[\"Accept\"] = \"application/json\""
    echo "wrk.headers[\"x-api-key\"] = \"$key\""
    if [ "$shape" = args ]; then
      echo "wrk.headers[\"Cookie\"] = \"$cookies\""
    fi
    case "$shape" in post4k|post64k)
      echo "local f = assert(io.open(\"$work/$shape.json\", \"rb\"))"
      echo "wrk.body = f:read(\"*a\")"
      echo "f:close()"
      echo "wrk.headers[\"Content-Type\"] = \"application/json\""
      ;;
    esac
  } >"$f"
}

# status_of SHAPE PORT KEY: the status code one request of the shape gets (curl, same request).
status_of() {
  local shape=$1 port=$2 key=$3
  local a=(-s -o /dev/null -w '%{http_code}' -H "User-Agent: $ua" -H "Accept: application/json"
    -H "x-api-key: $key")
  [ "$shape" = args ] && a+=(-H "Cookie: $cookies")
  case "$shape" in post4k|post64k)
    a+=(-H "Content-Type: application/json" --data-binary "@$work/$shape.json") ;;
  esac
  curl "${a[@]}" "http://127.0.0.1:$port$(shape_path "$shape")" || true
}

# palisade_config ID PORT ADMIN_PORT KIND PARANOIA: writes $work/ID/palisade.yaml.
palisade_config() {
  local id=$1 port=$2 aport=$3 kind=$4 pl=$5 d="$work/$1"
  mkdir -p "$d"
  {
    cat <<EOF
listeners:
  - address: 127.0.0.1:$port
admin:
  address: 127.0.0.1:$aport
  token: bench
server:
  threads: 1
upstreams:
  peer:
    targets:
      - address: $UPSTREAM
routes:
  - name: all
    path: /*
    upstream: peer
EOF
    if [ "$kind" = full ]; then
      full_protection_yaml "$pl" "$root/rules" "$d/keys.json"
    fi
    if [ "$kind" = full ] || [ "$kind" = analytics ]; then
      if [ "$ANALYTICS_DEST" = discard ]; then
        sink="{url: \"http://$UPSTREAM\", database: $ch_db, migrate: false}"
      else
        sink="{url: \"$CLICKHOUSE_URL\", database: $ch_db}"
      fi
      cat <<EOF
analytics:
  sink:
    clickhouse: $sink
  spool: {dir: $d/spool}
  security_log: {path: $d/security.log}
EOF
    fi
  } >"$d/palisade.yaml"
}
