#!/usr/bin/env bash
# Multi-host test with a real DNS server (dnsmasq), run by .ci/run as root.
#
# Builds three "hosts" as network namespaces on a bridge (each with its own IP and the same
# listen port, production style: port 0 in the snapshot), plus a fourth namespace running
# dnsmasq that serves the headless-service name with the three IPs. Runs `orca-cluster node` in
# each host, fills from host 1 chunks coordinated by each of the others (bytes verified), then
# removes host 3 from DNS and shows hosts 1 and 2 re-coordinate within one refresh interval.
# All traffic stays inside the namespaces created here; everything is torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../../.ci/skip.sh
. .ci/skip.sh

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v dnsmasq >/dev/null; then
  skip_or_fail "multihost: needs root, iproute2 and dnsmasq (.ci/run installs them)"
fi
if ! ip netns add orcamh-probe 2>/dev/null; then
  skip_or_fail "multihost: cannot create network namespaces here"
fi
ip netns del orcamh-probe

cargo build --release -q -p orca-cluster-cli --bin orca-cluster
BIN="$PWD/target/release/orca-cluster"
WORK="$(mktemp -d)"
SERVICE="orca-peers.mh.test"
NET="10.213.7"
DNS_IP="$NET.53"
REFRESH_S=2
PIDS=()
NSES=(orcamh-br orcamh-dns orcamh-n1 orcamh-n2 orcamh-n3)

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done

# --- network: a bridge namespace and one veth per host ---
ip netns add orcamh-br
ip -n orcamh-br link add br0 type bridge
ip -n orcamh-br link set br0 up
attach() { # ns index ip
  local ns=$1 i=$2 addr=$3
  ip netns add "$ns"
  ip link add "veth$i" type veth peer name eth0 netns "$ns"
  ip link set "veth$i" netns orcamh-br
  ip -n orcamh-br link set "veth$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}
attach orcamh-dns 0 "$DNS_IP"
attach orcamh-n1 1 "$NET.11"
attach orcamh-n2 2 "$NET.12"
attach orcamh-n3 3 "$NET.13"

# --- DNS: dnsmasq serving the service name from a hosts file (SIGHUP re-reads it) ---
write_hosts() { : > "$WORK/hosts"; for ip in "$@"; do echo "$ip $SERVICE" >> "$WORK/hosts"; done; }
write_hosts "$NET.11" "$NET.12" "$NET.13"
ip netns exec orcamh-dns dnsmasq --keep-in-foreground --no-resolv --no-hosts \
  --addn-hosts="$WORK/hosts" --listen-address="$DNS_IP" --bind-interfaces --port=53 \
  --local-ttl=30 --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/dnsmasq.log" --user=root &
DNSMASQ_PID=$!
PIDS+=("$DNSMASQ_PID")

# --- three nodes, same port everywhere ---
for i in 1 2 3; do
  ip netns exec "orcamh-n$i" "$BIN" node --service "$SERVICE" --nameserver "$DNS_IP:53" \
    --self-ip "$NET.1$i" --listen 0.0.0.0:8444 --admin-listen 0.0.0.0:8445 \
    --refresh "${REFRESH_S}s" --origin synthetic >"$WORK/node$i.log" 2>&1 &
  PIDS+=("$!")
done

# Wait (bounded) until every node is ready and sees all three peers.
ready=0
for _ in $(seq 1 100); do
  ready=0
  for i in 1 2 3; do
    out=$(ip netns exec orcamh-n1 curl -s --max-time 1 "http://$NET.1$i:8445/peers" || true)
    n=$(printf '%s' "$out" | grep -o '"ip"' | wc -l || true)
    if [ "$n" = 3 ]; then ready=$((ready + 1)); fi
  done
  if [ "$ready" = 3 ]; then break; fi
  sleep 0.2
done
if [ "$ready" != 3 ]; then
  echo "multihost: nodes did not converge"; for i in 1 2 3; do echo "--- node$i"; cat "$WORK/node$i.log"; done; exit 1
fi
echo "multihost: 3 nodes up, each sees 3 peers"

KEY=(--origin-id mh-origin --bucket bucket --key "objects/multi host.bin" --etag v1 --chunk-size 1048576)
OBJECT_SIZE=$((16 * 1048576 - 12345))
coordinator_of() { # index -> coordinator IP as seen from node 1's DNS view
  ip netns exec orcamh-n1 "$BIN" coordinator --service "$SERVICE" --nameserver "$DNS_IP:53" \
    --self-ip "$NET.11" "${KEY[@]}" --index "$1" --json | sed -n 's/.*"coordinator":{"ip":"\([^"]*\)".*/\1/p'
}

# Find a chunk coordinated by host 2 and one by host 3, fill both from host 1, verify bytes.
declare -A chunk_of
for idx in $(seq 0 15); do
  c=$(coordinator_of "$idx")
  case "$c" in
    "$NET.12"|"$NET.13") if [ -z "${chunk_of[$c]:-}" ]; then chunk_of[$c]=$idx; fi ;;
  esac
done
for host in "$NET.12" "$NET.13"; do
  idx=${chunk_of[$host]:-}
  if [ -z "$idx" ]; then echo "multihost: no chunk coordinated by $host among 16"; exit 1; fi
  ip netns exec orcamh-n1 "$BIN" fill --service "$SERVICE" --nameserver "$DNS_IP:53" \
    --self-ip "$NET.11" "${KEY[@]}" --index "$idx" --object-size "$OBJECT_SIZE" \
    --verify-synthetic -o "$WORK/chunk$idx"
  echo "multihost: chunk $idx filled from its coordinator $host and verified"
done

# Remove host 3 from DNS; hosts 1 and 2 must drop it within one refresh interval.
moved=${chunk_of[$NET.13]}
write_hosts "$NET.11" "$NET.12"
kill -HUP "$DNSMASQ_PID"
start=$(date +%s%N)
gone=0
for _ in $(seq 1 100); do
  gone=0
  for i in 1 2; do
    out=$(ip netns exec orcamh-n1 curl -s --max-time 1 "http://$NET.1$i:8445/peers" || true)
    if [ -n "$out" ] && ! printf '%s' "$out" | grep -q "\"$NET.13\""; then gone=$((gone + 1)); fi
  done
  if [ "$gone" = 2 ]; then break; fi
  sleep 0.05
done
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$gone" != 2 ]; then echo "multihost: host 3 still in the peer sets after ${elapsed_ms} ms"; exit 1; fi
limit_ms=$((REFRESH_S * 1000 + 500))
echo "multihost: hosts 1 and 2 dropped host 3 after ${elapsed_ms} ms (refresh interval ${REFRESH_S}s)"
if [ "$elapsed_ms" -gt "$limit_ms" ]; then echo "multihost: slower than one refresh interval"; exit 1; fi

# Both remaining hosts agree on the new coordinator of the moved chunk, and it can be filled.
q="origin_id=mh-origin&bucket=bucket&key=objects%2Fmulti+host.bin&etag=v1&chunk_size=1048576&index=$moved&object_size=$OBJECT_SIZE"
c1=$(ip netns exec orcamh-n1 curl -s "http://$NET.11:8445/coordinator?$q" | sed -n 's/.*"ip":"\([^"]*\)".*/\1/p')
c2=$(ip netns exec orcamh-n1 curl -s "http://$NET.12:8445/coordinator?$q" | sed -n 's/.*"ip":"\([^"]*\)".*/\1/p')
if [ "$c1" != "$c2" ] || [ "$c1" = "$NET.13" ] || [ -z "$c1" ]; then
  echo "multihost: hosts disagree on chunk $moved after removal: '$c1' vs '$c2'"; exit 1
fi
from=orcamh-n1; self="$NET.11"
if [ "$c1" = "$NET.11" ]; then from=orcamh-n2; self="$NET.12"; fi
ip netns exec "$from" "$BIN" fill --service "$SERVICE" --nameserver "$DNS_IP:53" \
  --self-ip "$self" "${KEY[@]}" --index "$moved" --object-size "$OBJECT_SIZE" --verify-synthetic -o "$WORK/moved"
echo "multihost: chunk $moved re-coordinated to $c1 and filled from it"
echo "multihost: 1 passed, 0 failed"
