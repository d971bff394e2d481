#!/bin/sh
# hfed-node: the node container's command. Brings the database to this
# version's schema (the node refuses to start on an older one), then runs the
# node in the foreground; `docker stop` sends SIGTERM, on which it shuts down
# gracefully. The configuration is HFED_CONFIG, or the first argument.
set -eu
config="${1:-${HFED_CONFIG:?set HFED_CONFIG or name the node.toml}}"
if [ ! -f "$config" ]; then
    echo "Error: no node configuration at $config (has the network been formed?)" >&2
    exit 1
fi
hfed db upgrade --config "$config"
exec hfed serve --config "$config"
