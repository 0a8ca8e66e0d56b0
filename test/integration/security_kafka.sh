#!/usr/bin/env bash
# PII at ingest through a real Kafka source worker: user ids, ips and the
# Kafka key are rewritten before anything lands; _raw and quarantined
# payloads are envelopes; the worker, running as a camperso_ingest member
# that does not own the table, lands into RLS-protected staging; analysts
# see their app only; forget_user then erases a user who came by Kafka.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

N=400
kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
cluster_create s
cluster_start s

q s "CREATE EXTENSION camperso"
q s "CREATE ROLE sk_loader IN ROLE camperso_admin, camperso_ingest"
q s "CREATE ROLE sk_analyst IN ROLE camperso_analyst"
q s "CREATE SCHEMA sk"
q s "CREATE TABLE sk.events (n int NOT NULL, user_id text, app_id text, ip text,
        _partition int, _offset bigint, _key text, _raw bytea)"
q s "SELECT camperso.secure_schema('sk')" >/dev/null
q s "SELECT camperso.grant_app('sk_analyst', 'app0')" >/dev/null

# Messages keyed by user id; every 50th has an ip that cannot be truncated.
gen() {
	awk -v n="$N" 'BEGIN {
		for (i = 1; i <= n; i++) {
			u = "user-" (i % 7)
			ip = (i % 50 == 0) ? "not-an-ip" : "192.0.2." (i % 250)
			printf "%s\t{\"n\":%d,\"user_id\":\"%s\",\"app_id\":\"app%d\",\"ip\":\"%s\"}\n", u, i, u, i % 2, ip
		}
	}'
}
gen | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
printf 'user-3\t{"n": 0, "user_id": "user-3" this is not json\n' | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
assert_eq $((N + 1)) "$(kafka_count k clicks)" "the embedded kafka holds every message"

opts='{"pii": {"user_id": "pseudonymize", "ip": "truncate", "_key": "pseudonymize"}, "batch_size": 100, "batch_ms": 50, "start": "earliest"}'
cluster_psql s -d postgres -c "SET ROLE sk_loader" -c "SELECT camperso.create_source('sk_src', '$BS', 'clicks', 'sk.events', options => '$opts')" >/dev/null ||
	fail "create_source as sk_loader"
q s "SELECT camperso.start_source('sk_src')" >/dev/null
landed_all() { [ "$(q s "SELECT (SELECT count(*) FROM sk.events) + (SELECT count(*) FROM camperso.quarantine WHERE source = 'sk_src')")" -ge $((N + 1)) ]; }
wait_for 60 "every message to land or be quarantined" landed_all
assert_eq $((N - N / 50)) "$(q s "SELECT count(*) FROM sk.events")" "every message with a good ip landed"
assert_eq "sk_loader" "$(q s "SELECT owner FROM camperso.sources WHERE name = 'sk_src'")" "the worker lands as sk_loader, not the table owner"

assert_eq 0 "$(q s "SELECT count(*) FROM sk.events WHERE user_id IS DISTINCT FROM camperso.pseudonymize('user-' || (n % 7))")" \
	"user_id is the pseudonym of the id"
assert_eq 0 "$(q s "SELECT count(*) FROM sk.events WHERE _key IS DISTINCT FROM user_id")" "the Kafka key is the same pseudonym"
assert_eq 0 "$(q s "SELECT count(*) FROM sk.events WHERE ip !~ '^192\.0\.2\.0$'")" "ips are truncated to /24"
assert_eq 0 "$(q s "SELECT count(*) FROM sk.events
                     WHERE convert_from(camperso.decrypt(_raw), 'UTF8')::jsonb ->> 'user_id' <> 'user-' || (n % 7)")" \
	"_raw decrypts to the message as sent"
assert_eq "$((N / 50 + 1))|$((N / 50 + 1))|0" "$(q s "SELECT count(*), count(*) FILTER (WHERE payload_encrypted),
                                             count(*) FILTER (WHERE key IS NOT NULL AND convert_from(key, 'UTF8') !~ '^[0-9a-f]{64}$')
                                      FROM camperso.quarantine WHERE source = 'sk_src'")" \
	"quarantined messages are envelopes, their keys pseudonyms"
assert_eq 0 "$(q s "SELECT (SELECT count(*) FROM sk.events t WHERE row_to_json(t)::text ~ 'user-[0-9]'
                           OR position('user-'::bytea IN t._raw) > 0)
                  + (SELECT count(*) FROM camperso.quarantine t WHERE row_to_json(t)::text ~ 'user-[0-9]'
                           OR position('user-'::bytea IN t.payload) > 0 OR position('user-'::bytea IN coalesce(t.key, '')) > 0)")" \
	"no clear user id anywhere in staging or the quarantine"

# Analysts: their app's rows only, and never staging.
out=$(cluster_psql s -d postgres -c "SET ROLE sk_analyst" -c "SELECT count(*) FROM sk.events" 2>&1)
grep -q "permission denied" <<<"$out" || fail "an analyst read staging: $out"
echo "ok - analysts cannot read staging"
assert_eq "app0" "$(cluster_psql s -d postgres -c "SET ROLE sk_analyst" -c "SELECT array_to_string(camperso.visible_apps(), ',')")" \
	"the analyst is granted app0"

# Erasure of a user that came through Kafka: rows, _raw, quarantine (by payload and key).
out=$(q s "SELECT string_agg(relation || '=' || coalesce(removed::text, 'recomputed'), ' ' ORDER BY relation) FROM camperso.forget_user('user-3')")
note "forget_user('user-3'): $out"
assert_eq 0 "$(q s "SELECT count(*) FROM sk.events WHERE user_id = camperso.pseudonymize('user-3') OR _key = camperso.pseudonymize('user-3')")" \
	"the user's rows are gone"
assert_eq 0 "$(q s "SELECT count(*) FROM camperso.quarantine WHERE camperso.payload_mentions(payload, payload_encrypted, ARRAY['user-3'])")" \
	"its quarantined messages are gone, the malformed one too"
assert_eq $((N - N / 50 - $(awk -v n="$N" 'BEGIN { c = 0; for (i = 1; i <= n; i++) if (i % 7 == 3 && i % 50 != 0) c++; print c }'))) \
	"$(q s "SELECT count(*) FROM sk.events")" "every other user's rows stay"
