#!/usr/bin/env bash
# Data keys: pseudonyms stable across sessions and restarts, rotation seen by
# other backends, dump/restore keeps keys, camperso.key_command wraps data
# keys under an outside key-encryption key (here a small script), KEK
# rotation through rewrap_keys(), and clear errors for a wrong or failing
# command.
source "$(dirname "$0")/../lib.sh"

cluster_create sk
cluster_start sk
q() { cluster_psql sk -d "${DB:-postgres}" -c "$1"; }
q_err() { psql -X -A -t -h 127.0.0.1 -p "$(cluster_port sk)" -U postgres -d "${DB:-postgres}" -c "$1" 2>&1; }

q "CREATE EXTENSION camperso" || fail "CREATE EXTENSION"
p1=$(q "SELECT camperso.pseudonymize('alice')")
e1=$(q "SELECT camperso.encrypt('secret one'::bytea)")
[[ $p1 =~ ^[0-9a-f]{64}$ ]] || fail "pseudonym format: $p1"

# ---- stable across sessions and restarts
assert_eq "$p1" "$(q "SELECT camperso.pseudonymize('alice')")" "pseudonym stable in a new session"
cluster_restart sk
assert_eq "$p1" "$(q "SELECT camperso.pseudonymize('alice')")" "pseudonym stable across a restart"
assert_eq "secret one" "$(q "SELECT convert_from(camperso.decrypt('$e1'::bytea), 'UTF8')")" "envelope decrypts after a restart"

# ---- a rotation in one backend is seen by another at its next transaction
out=$(cluster_psql sk -d postgres <<SQL
SELECT camperso.pseudonymize('alice');
\! psql -X -q -A -t -h 127.0.0.1 -p $(cluster_port sk) -U postgres -d postgres -c "SELECT camperso.rotate_key()" >/dev/null
SELECT camperso.pseudonymize('alice');
SELECT camperso.pseudonymize('alice', 1);
SQL
)
mapfile -t lines <<<"$out"
assert_eq "$p1" "${lines[0]}" "session starts on key 1"
[ "${lines[1]}" != "$p1" ] || fail "the same session did not pick up the rotation"
assert_eq "$p1" "${lines[2]}" "old pseudonyms stay reproducible with their version"
p2=${lines[1]}
assert_eq "$p2" "$(q "SELECT camperso.pseudonymize('alice')")" "new sessions use key 2"
assert_eq "secret one" "$(q "SELECT convert_from(camperso.decrypt('$e1'::bytea), 'UTF8')")" "key-1 envelope decrypts after rotation"

# ---- dump and restore carry the keys (config table), replacing the fresh install key
dump=$CAMPERSO_TEST_WORK/sk.dump
pg_dump -h 127.0.0.1 -p "$(cluster_port sk)" -U postgres -d postgres -Fc -f "$dump" ||
	fail "pg_dump failed"
q "CREATE DATABASE restored"
pg_restore -h 127.0.0.1 -p "$(cluster_port sk)" -U postgres -d restored "$dump" 2>"$CAMPERSO_TEST_WORK/restore.err" ||
	fail "pg_restore failed: $(cat "$CAMPERSO_TEST_WORK/restore.err")"
DB=restored
assert_eq 2 "$(q "SELECT count(*) FROM camperso.keys")" "restored database has both key versions"
assert_eq "$p2" "$(q "SELECT camperso.pseudonymize('alice')")" "restored database makes the same pseudonyms"
assert_eq "secret one" "$(q "SELECT convert_from(camperso.decrypt('$e1'::bytea), 'UTF8')")" "restored database decrypts old envelopes"
DB=postgres

# ---- key_command: data keys wrapped under an outside key-encryption key
kek_a=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
kek_b=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100
kekfile=$CAMPERSO_TEST_WORK/kek.txt
kms=$CAMPERSO_TEST_WORK/kms.sh
printf '#!/bin/sh\n# a stand-in for a KMS client: prints the KEK(s)\ncat %s\n' "$kekfile" >"$kms"
chmod 755 "$kms"
echo "$kek_a" >"$kekfile"
chmod 644 "$kekfile"
plain_key_hex=$(q "SELECT encode(key, 'hex') FROM camperso.keys WHERE version = 1")

echo "camperso.key_command = '$kms'" >>"$(cluster_dir sk)/data/postgresql.conf"
q "SELECT pg_reload_conf()" >/dev/null
key_loaded() { [ "$(q "SHOW camperso.key_command")" = "$kms" ]; }
wait_for 10 "key_command to be loaded" key_loaded
fp_a=$(q "SELECT camperso.key_fingerprint()")
[[ $fp_a =~ ^[0-9a-f]{16}$ ]] || fail "fingerprint format: $fp_a"

assert_eq 2 "$(q "SELECT camperso.rewrap_keys()")" "rewrap_keys wraps both plain keys"
assert_eq "t|$fp_a" "$(q "SELECT bool_and(wrapped), min(kek_fingerprint) FROM camperso.key_versions")" "every key is wrapped under KEK A"
assert_eq 0 "$(q "SELECT count(*) FROM camperso.keys WHERE encode(key, 'hex') LIKE '%$plain_key_hex%'")" "the plain key bytes are gone from the table"
assert_eq "$p2" "$(q "SELECT camperso.pseudonymize('alice')")" "same pseudonyms once wrapped (same data key)"
assert_eq 3 "$(q "SELECT camperso.rotate_key()")" "rotation under a KEK"
assert_eq "t" "$(q "SELECT wrapped FROM camperso.key_versions WHERE version = 3")" "new key versions are born wrapped"
pg_dump -h 127.0.0.1 -p "$(cluster_port sk)" -U postgres -d postgres -Fp -f "$CAMPERSO_TEST_WORK/sk.sql" ||
	fail "pg_dump failed"
grep -q "$plain_key_hex" "$CAMPERSO_TEST_WORK/sk.sql" && fail "a dump shows a data key in clear"
echo "ok - a dump holds only wrapped keys"

# A fresh install with key_command set wraps its first key.
q "CREATE DATABASE wrapped_install"
DB=wrapped_install
q "CREATE EXTENSION camperso"
assert_eq "t|$fp_a" "$(q "SELECT wrapped, kek_fingerprint FROM camperso.key_versions")" "install key wrapped when key_command is set"
DB=postgres

# KEK rotation: print the new KEK first and the old one after it, rewrap.
printf '%s\n%s\n' "$kek_b" "$kek_a" >"$kekfile"
fp_b=$(q "SELECT camperso.key_fingerprint()")
[ "$fp_b" != "$fp_a" ] || fail "a different KEK has a different fingerprint"
assert_eq 3 "$(q "SELECT camperso.rewrap_keys()")" "rewrap_keys moves every key to KEK B"
echo "$kek_b" >"$kekfile"
assert_eq "$p2" "$(q "SELECT camperso.pseudonymize('alice', 2)")" "keys unwrap with KEK B alone"
assert_eq "secret one" "$(q "SELECT convert_from(camperso.decrypt('$e1'::bytea), 'UTF8')")" "old envelopes still decrypt"

# Wrong KEK: a clear error, no pseudonym.
echo "$kek_a" >"$kekfile"
out=$(q_err "SELECT camperso.pseudonymize('alice')")
grep -q "wrapped by another key-encryption key" <<<"$out" || fail "wrong KEK: $out"
echo "ok - wrong KEK is refused clearly"
# Garbage and failing commands.
echo "not-a-key" >"$kekfile"
out=$(q_err "SELECT camperso.pseudonymize('alice')")
grep -q "printed no key-encryption key" <<<"$out" || fail "garbage KEK: $out"
printf '#!/bin/sh\nexit 3\n' >"$kms"
out=$(q_err "SELECT camperso.pseudonymize('alice')")
grep -q "camperso.key_command failed" <<<"$out" && grep -q "exit code 3" <<<"$out" || fail "failing command: $out"
echo "ok - garbage output and failing commands are reported"

# The setting is superuser-only: others can neither read nor set it.
q "CREATE ROLE sk_admin LOGIN IN ROLE camperso_admin"
out=$(psql -X -A -t -h 127.0.0.1 -p "$(cluster_port sk)" -U sk_admin -d postgres -c "SHOW camperso.key_command" 2>&1)
grep -q "must be superuser\|permission denied" <<<"$out" || fail "non-superuser read key_command: $out"
out=$(psql -X -A -t -h 127.0.0.1 -p "$(cluster_port sk)" -U sk_admin -d postgres -c "SET camperso.key_command = 'x'" 2>&1)
grep -q "cannot be changed now\|permission denied" <<<"$out" || fail "non-superuser set key_command: $out"
echo "ok - key_command is hidden from and fixed for non-superusers"
