#!/usr/bin/env bash
# Compiled rulesets are cached per backend; a rule change committed in one
# session is seen by another session's next statement, with no stale rules,
# both between transactions and inside an open transaction.
source "$(dirname "$0")/../lib.sh"

cluster_create v
cluster_start v
cluster_psql v -d postgres -c "CREATE EXTENSION camperso" || fail "create extension"
cluster_psql v -d postgres <<'SQL' || fail "setup"
SELECT camperso.add_rule('shop', 'qty', 'range', '{"min": 1, "max": 100}');
CREATE TABLE items (qty int, label text);
CREATE TRIGGER v BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('shop');
SQL

# Session A: one long-lived psql fed through a fifo, its output in a file.
dir=$CAMPERSO_TEST_WORK/session-a
mkdir -p "$dir"
mkfifo "$dir/in"
psql -X -q -A -t -h 127.0.0.1 -p "$(cluster_port v)" -U postgres -d postgres \
	<"$dir/in" >"$dir/out" 2>&1 &
exec {afd}>"$dir/in"
marker=0
# a_run SQL: runs SQL in session A and waits until it has been executed.
a_run() {
	marker=$((marker + 1))
	printf '%s\n\\echo done-%d\n' "$1" "$marker" >&"$afd"
	wait_for 20 "session A to run: $1" grep -q "^done-$marker\$" "$dir/out"
}
count() { cluster_psql v -d postgres -c "$1"; }

a_run "SELECT pg_backend_pid();"
a_run "INSERT INTO items VALUES (50, 'a1');"
assert_eq 1 "$(count "SELECT count(*) FROM items")" "session A landed a valid row (ruleset now cached there)"

# Session B tightens the rule; A's next transaction must use it.
count "SELECT camperso.add_rule('shop', 'qty', 'range', '{\"min\": 1, \"max\": 10}')" >/dev/null
a_run "INSERT INTO items VALUES (50, 'a2');"
assert_eq 1 "$(count "SELECT count(*) FROM items")" "after B's change, A's row breaking the new range is not landed"
assert_eq "range|qty" "$(count "SELECT rule || '|' || field FROM camperso.quarantine WHERE convert_from(payload, 'UTF8')::jsonb->>'label' = 'a2'")" \
	"it is quarantined under the new rule"

# Inside an open transaction of A: B adds a rule, A's next statement sees it.
a_run "BEGIN;"
a_run "INSERT INTO items VALUES (5, 'a3');"
count "SELECT camperso.add_rule('shop', 'label', 'regex', '\"^ok\"')" >/dev/null
a_run "INSERT INTO items VALUES (5, 'a4');"
a_run "INSERT INTO items VALUES (5, 'ok5');"
a_run "COMMIT;"
assert_eq "a1,a3,ok5" "$(count "SELECT string_agg(label, ',' ORDER BY label) FROM items")" \
	"a rule committed by B applies to A's next statement inside its transaction"

# Dropping the ruleset in B makes A's inserts fail clearly, not use stale rules.
count "SELECT camperso.drop_ruleset('shop')" >/dev/null
a_run "INSERT INTO items VALUES (5, 'ok6');"
grep -q 'ruleset "shop" does not exist' "$dir/out" || fail "A did not notice the dropped ruleset: $(cat "$dir/out")"
echo "ok - a dropped ruleset is noticed by the other session"

# Recreated, it applies again.
count "SELECT camperso.add_rule('shop', 'qty', 'range', '{\"max\": 1}')" >/dev/null
a_run "INSERT INTO items VALUES (5, 'ok7');"
a_run "INSERT INTO items VALUES (1, 'ok8');"
assert_eq "a1,a3,ok5,ok8" "$(count "SELECT string_agg(label, ',' ORDER BY label) FROM items")" \
	"the recreated ruleset is used at once"

exec {afd}>&-
wait
