#!/bin/sh
# hfed-form-network: form a test network with the operator commands, the way
# separate parties would (docs/operations.md, "Form a network"), for
# docker/compose.yaml's `init` service. It runs once: a formed network is left
# as it is.
#
# Every party works in its own directory and only public files cross between
# them (send() refuses anything else):
#   /parties/offline/root-N   root key holder N (root.pem)
#   /parties/offline/office   the secretariat's offline side (ca.key, roster.toml)
#   /parties/MEMBER           MEMBER's node volume, its /var/lib/hfed:
#                             member/ (signing.pem, tls.key, tls.pem, request.toml),
#                             network/ (ca.pem, trust.toml, roster.bin) and
#                             node/ (node.toml, data/)
# A node's container mounts only its own volume, so it holds no other party's
# secret. The root keys and the CA key sit in the `offline` volume, which only
# this service mounts: acceptable for a test network, never for a real one,
# where they stay on offline machines.
#
# Settings (docker/compose.yaml passes them):
#   NETWORK_MEMBERS  "ID:ROLE:COUNTRIES:PORT ..." (COUNTRIES comma-separated;
#                    the first member is the secretariat, the roster's fallback)
#   NETWORK_NAME     the CA's name;  ROOTS, THRESHOLD  root holders and K
#
# Started as root, it only gives the volumes' top directories to the hfed user
# (a new named volume mounted where the image has no directory is root's),
# then drops to that user for everything else.
set -eu

HFED_UID=10001
PARTIES=/parties
OFFLINE=$PARTIES/offline
OFFICE=$OFFLINE/office
ROOTS=${ROOTS:-3}
THRESHOLD=${THRESHOLD:-2}
NETWORK_NAME=${NETWORK_NAME:-Docker test network}
: "${NETWORK_MEMBERS:?set NETWORK_MEMBERS (ID:ROLE:COUNTRIES:PORT ...)}"

if [ "$(id -u)" = 0 ]; then
    for volume in "$PARTIES"/*/; do
        chown "$HFED_UID:$HFED_UID" "$volume"
        chmod 0750 "$volume"
    done
    exec setpriv --reuid="$HFED_UID" --regid="$HFED_UID" --clear-groups "$0" "$@"
fi
umask 077

say() { printf '== %s\n' "$*"; }

# Copy one public file to another party; anything else is refused.
send() {
    case "$(basename "$1")" in
        request.toml | tls.csr | tls.pem | ca.pem | trust.toml | roster.unsigned | roster.bin | *.sig) ;;
        *)
            echo "Error: $1 is not a public file" >&2
            exit 1
            ;;
    esac
    mkdir -p "$2"
    cp "$1" "$2/"
    chmod 0644 "$2/$(basename "$1")"
}

field() { echo "$1" | cut -d: -f"$2"; }

make_roots() {
    keys=""
    i=1
    while [ "$i" -le "$ROOTS" ]; do
        mkdir -p "$OFFLINE/root-$i"
        public=$(hfed root keygen "$OFFLINE/root-$i/root.pem" | sed -n 's/^public key: //p')
        keys="$keys --root-public-key $public"
        i=$((i + 1))
    done
    say "secretariat: CA and trust.toml ($THRESHOLD of $ROOTS roots)"
    hfed ca init "$OFFICE/ca" --network-name "$NETWORK_NAME"
    # shellcheck disable=SC2086 # one word per flag and key
    hfed ca trust --ca "$OFFICE/ca" $keys --threshold "$THRESHOLD"
}

# member ID ROLE COUNTRIES PORT: the member makes its keys and request and
# sends the public part; the secretariat lists it and issues its certificate.
make_member() {
    say "$1: keys and membership request"
    flags=""
    for country in $(echo "$3" | tr ',' ' '); do
        flags="$flags --jurisdiction $country"
    done
    # shellcheck disable=SC2086 # one word per flag and country
    hfed member init "$PARTIES/$1/member" --member "$1" --role "$2" $flags \
        --endpoint "127.0.0.1:$4" --host 127.0.0.1 --display-name "$1"
    send "$PARTIES/$1/member/request.toml" "$OFFICE/inbox/$1"
    send "$PARTIES/$1/member/tls.csr" "$OFFICE/inbox/$1"
    hfed roster add "$OFFICE/roster.toml" "$OFFICE/inbox/$1/request.toml"
    hfed ca issue --ca "$OFFICE/ca" "$OFFICE/inbox/$1/tls.csr" --member "$1" \
        --roster "$OFFICE/roster.toml" --out "$OFFICE/inbox/$1/tls.pem"
    send "$OFFICE/inbox/$1/tls.pem" "$PARTIES/$1/member"
}

# The first THRESHOLD roots sign roster.unsigned where they keep their key.
ceremony() {
    say "signing ceremony: roster version 1"
    hfed roster build "$OFFICE/roster.toml" --out "$OFFICE/roster.unsigned"
    signatures=""
    i=1
    while [ "$i" -le "$THRESHOLD" ]; do
        holder="$OFFLINE/root-$i"
        send "$OFFICE/roster.unsigned" "$holder"
        hfed roster sign "$holder/roster.unsigned" --root-key "$holder/root.pem" --out "$holder/root-$i.sig"
        send "$holder/root-$i.sig" "$OFFICE"
        signatures="$signatures $OFFICE/root-$i.sig"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086 # one file per signature
    hfed roster assemble "$OFFICE/roster.unsigned" $signatures \
        --trust "$OFFICE/ca/trust.toml" --out "$OFFICE/roster.bin"
}

# node ID PORT: the network's public files go to the member, which writes its node.toml.
make_node() {
    home="$PARTIES/$1"
    for file in "$OFFICE/ca/ca.pem" "$OFFICE/ca/trust.toml" "$OFFICE/roster.bin"; do
        send "$file" "$home/network"
    done
    hfed node init "$home/node" --member-dir "$home/member" --trust "$home/network/trust.toml" \
        --roster "$home/network/roster.bin" --cert "$home/member/tls.pem" --listen "127.0.0.1:$2"
}

if [ -f "$OFFLINE/formed" ]; then
    say "network already formed (the volumes hold it); nothing to do"
    exit 0
fi
if [ -e "$OFFICE" ]; then
    echo "Error: a formation stopped half-way; remove the volumes (docker compose down -v) and start again" >&2
    exit 1
fi
say "root key holders: one key each"
make_roots
for entry in $NETWORK_MEMBERS; do
    make_member "$(field "$entry" 1)" "$(field "$entry" 2)" "$(field "$entry" 3)" "$(field "$entry" 4)"
done
ceremony
for entry in $NETWORK_MEMBERS; do
    say "$(field "$entry" 1): node configuration"
    make_node "$(field "$entry" 1)" "$(field "$entry" 4)"
done
date -u +%Y-%m-%dT%H:%M:%SZ >"$OFFLINE/formed"
say "network formed: $(echo "$NETWORK_MEMBERS" | wc -w) members"
