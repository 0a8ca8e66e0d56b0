#!/usr/bin/env bash
# Generator output, invalid lines included, through camperso.ingest_batch():
# every line is accounted for (landed + quarantined = produced, exactly),
# every quarantined payload is byte-identical to a line that was sent, the
# staging table holds exactly the landed rows, and a clean run quarantines
# nothing. Also checks the generator is deterministic per seed.
source "$(dirname "$0")/../lib.sh"

GEN=$CAMPERSO_ROOT/tools/camperso-gen
[ -x "$GEN" ] || fail "tools/camperso-gen is not built"
N=20000
[ -n "$CAMPERSO_QUICK" ] && N=5000
W=$CAMPERSO_TEST_WORK/ingest_generator
mkdir -p "$W"
chmod 755 "$W"

# deterministic: same seed, same bytes; another seed, other bytes
a=$("$GEN" --events 500 --seed 42 --invalid-rate 0.05 | md5sum)
b=$("$GEN" --events 500 --seed 42 --invalid-rate 0.05 | md5sum)
c=$("$GEN" --events 500 --seed 43 --invalid-rate 0.05 | md5sum)
assert_eq "$a" "$b" "generator output is deterministic per seed"
[ "$a" != "$c" ] || fail "different seeds gave the same output"

# lines -> COPY input for a bytea column, byte-exact ("\\x<hex>" per line)
to_copy() { perl -ne 'chomp; print "\\\\x", unpack("H*", $_), "\n"'; }

"$GEN" --events "$N" --seed 7 --invalid-rate 0.05 --duplicate-rate 0.01 --apps 4 | to_copy >"$W/bad.copy"
"$GEN" --events "$N" --seed 8 --invalid-rate 0 | to_copy >"$W/clean.copy"
chmod 644 "$W"/*.copy
assert_eq "$N" "$(wc -l <"$W/bad.copy")" "generator wrote $N lines"

cluster_create ig
cluster_start ig
cluster_psql ig -d postgres <<SQL
CREATE EXTENSION camperso;
CREATE TABLE events (
	event_id	uuid NOT NULL,
	user_id		varchar(64) NOT NULL,
	session_id	text,
	app_id		text,
	event_type	text,
	page_url	text,
	referrer	text,
	user_agent	text,
	ip			inet,
	country		text,
	ts			timestamptz NOT NULL,
	props		jsonb,
	_raw		bytea,
	_received_at timestamptz
);
INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('gen', 'unused:9092', 'clicks', 'events');
CREATE TABLE lines_bad (n bigserial, l bytea);
CREATE TABLE lines_clean (n bigserial, l bytea);
COPY lines_bad (l) FROM '$W/bad.copy';
COPY lines_clean (l) FROM '$W/clean.copy';
CREATE TABLE results AS
SELECT r.* FROM (SELECT (n - 1) / 1000 AS b, array_agg(l ORDER BY n) AS ls FROM lines_bad GROUP BY 1) x,
	 LATERAL camperso.ingest_batch('gen', x.ls) r;
SQL
[ $? -eq 0 ] || fail "loading generator output failed"

q() { cluster_psql ig -d postgres -c "$1"; }
assert_eq "$N" "$(q "SELECT count(*) FROM lines_bad")" "all lines loaded byte-exact"
assert_eq "$N" "$(q "SELECT sum(landed + quarantined + deduplicated) FROM results")" \
	"landed + quarantined + deduplicated = produced"
assert_eq "$(q "SELECT sum(landed) FROM results")" "$(q "SELECT count(*) FROM events")" \
	"the staging table holds exactly the landed rows"
assert_eq "$(q "SELECT sum(quarantined) FROM results")" "$(q "SELECT count(*) FROM camperso.quarantine WHERE source = 'gen'")" \
	"the quarantine holds exactly the quarantined messages"
nq=$(q "SELECT sum(quarantined) FROM results")
[ "$nq" -gt $((N / 100)) ] || fail "expected a few percent quarantined, got $nq of $N"
assert_eq 0 "$(q "SELECT count(*) FROM camperso.quarantine q WHERE source = 'gen' AND NOT EXISTS (SELECT 1 FROM lines_bad l WHERE l.l = q.payload)")" \
	"every quarantined payload is byte-identical to a line sent"
assert_eq 0 "$(q "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM lines_bad l WHERE l.l = e._raw)")" \
	"every landed _raw is byte-identical to a line sent"
assert_eq "$N" "$(q "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM camperso.quarantine WHERE source = 'gen')")" \
	"rows + quarantine rows = lines"
# every kind of bad line the generator makes is caught by the right rule
for rule in malformed_json wrong_type not_null invalid_utf8 nul_byte not_an_object too_long; do
	n=$(q "SELECT count(*) FROM camperso.quarantine WHERE source = 'gen' AND rule = '$rule'")
	[ "$n" -gt 0 ] || fail "no quarantine row with rule $rule"
	echo "ok - rule $rule: $n rows"
done
# typed values are right: the landed event equals its own _raw, decoded by jsonb
assert_eq 0 "$(q "SELECT count(*) FROM events WHERE
	event_id <> (convert_from(_raw, 'UTF8')::jsonb->>'event_id')::uuid OR
	ts <> (convert_from(_raw, 'UTF8')::jsonb->>'ts')::timestamptz OR
	props IS DISTINCT FROM convert_from(_raw, 'UTF8')::jsonb->'props' OR
	referrer IS DISTINCT FROM convert_from(_raw, 'UTF8')::jsonb->>'referrer' OR
	ip <> (convert_from(_raw, 'UTF8')::jsonb->>'ip')::inet")" "typed columns agree with jsonb's reading of _raw"

# a clean stream quarantines nothing
q "SELECT sum(r.landed), sum(r.quarantined) FROM (SELECT (n - 1) / 2000 AS b, array_agg(l ORDER BY n) AS ls FROM lines_clean GROUP BY 1) x, LATERAL camperso.ingest_batch('gen', x.ls) r" >"$W/clean.out"
assert_eq "$N|0" "$(cat "$W/clean.out")" "a clean stream lands every line"
