"""The analysts' console (``hfed console``): a web application beside one node.

A thin client: every case it shows and every action it takes goes to the
node's HotlineService over gRPC, as the node's own operator identity and with
the analyst's name in the call metadata; the node keeps every rule. The
console owns only what a web front needs: its accounts (Argon2id hashes in
a small SQLite file of its own), login sessions, CSRF tokens and throttling.
"""
