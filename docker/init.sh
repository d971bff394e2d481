#!/bin/sh
# Create the network's keys, CA, certificates and roster once (endpoints are
# the compose service names), then point each node at its PostgreSQL database
# and create the schema. Test-network material: the keys are not encrypted.
set -eu
if [ ! -f /network/manifest.json ]; then
  hfed devnet init --service-hosts /network
fi
for node in hotline-dk hotline-nl hotline-de secretariat; do
  db=$(echo "$node" | tr '-' '_')
  config="/network/members/$node/node.toml"
  sed -i "s|^database_url = .*|database_url = \"postgresql+psycopg://hfed:hfed-dev-only@postgres:5432/$db\"|" "$config"
  hfed db upgrade --config "$config"
done
echo "network ready in the 'network' volume"
