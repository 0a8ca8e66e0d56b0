#!/usr/bin/env bash
# The launcher's job runner: partition maintenance runs once the extension
# exists, a model is loaded every few seconds once it exists, a failing job
# is contained (failed run recorded, backoff growing, launcher alive) and
# recovers, jobs run as their owner, and a job past its timeout is cancelled.
source "$(dirname "$0")/../lib.sh"

cluster_create j
cluster_start j
q() { cluster_psql j -d postgres -c "SET TimeZone = 'UTC'" -c "$1"; }
launcher() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'camperso launcher'"; }
has_launcher() { [ -n "$(launcher)" ]; }
wait_for 20 "the launcher" has_launcher
pid=$(launcher)

q "CREATE EXTENSION camperso"
maintenance_ran() { [ "$(q "SELECT count(*) FROM camperso.runs WHERE job = 'maintenance' AND status = 'success'")" -ge 1 ]; }
wait_for 30 "partition maintenance to run" maintenance_ran
echo "ok - partition maintenance runs once the extension exists"

# ---- a model is loaded by the launcher --------------------------------------
q "SELECT camperso.create_clickstream_model('cs', load_every => '1 second', validate => false)" >/dev/null
ev() {
	q "INSERT INTO cs.events (event_id, user_id, event_type, page_url, ts)
	   SELECT gen_random_uuid(), 'u' || g, 'page_view', 'https://a.example/' || g, now() - interval '1 minute'
		 FROM generate_series(1, $1) g"
}
facts_are() { [ "$(q "SELECT count(*) FROM cs.fact_clicks")" = "$1" ]; }
ev 3
wait_for 30 "the launcher to load the staged events" facts_are 3
echo "ok - the launcher loads a model once it exists"
assert_eq "success|0" "$(q "SELECT last_status || '|' || failures FROM camperso.jobs WHERE name = 'load_model:cs'")" "the load job is recorded as succeeded"
assert_eq 1 "$(q "SELECT count(*) FROM camperso.runs WHERE job = 'load_model:cs' AND status = 'success' AND rows_out = 3")" \
	"the load run is recorded with its row counts"

# ---- a failing load is contained, backs off, and recovers -------------------
q "ALTER TABLE cs.fact_clicks RENAME TO fact_clicks_moved"
ev 1
failures_at_least() { [ "$(q "SELECT failures FROM camperso.jobs WHERE name = 'load_model:cs'")" -ge "$1" ]; }
wait_for 30 "the load to fail" failures_at_least 1
assert_eq t "$(q "SELECT count(*) > 0 FROM camperso.runs WHERE job = 'load_model:cs' AND status = 'failed' AND error LIKE '%fact_clicks%'")" \
	"a failed run is recorded with its error"
wait_for 30 "a second failure" failures_at_least 2
# After n consecutive failures the next try waits 2^n x run_every (1 s).
assert_eq t "$(q "SELECT round(extract(epoch FROM next_run_at - last_finished_at)) = power(2, failures) FROM camperso.jobs WHERE name = 'load_model:cs'")" \
	"the backoff doubles with each failure"
assert_eq "$pid" "$(launcher)" "the launcher survived the failures"
q "ALTER TABLE cs.fact_clicks_moved RENAME TO fact_clicks"
wait_for 60 "the load to recover" facts_are 4
recovered() { [ "$(q "SELECT failures FROM camperso.jobs WHERE name = 'load_model:cs'")" = 0 ]; }
wait_for 30 "the failure count to reset" recovered
echo "ok - the load recovers and its failures reset"

# ---- jobs run as their owner ---------------------------------------------------
q "CREATE ROLE jobber LOGIN IN ROLE camperso_admin"
q "CREATE TABLE public.job_log (who text, job text)"
q "GRANT INSERT ON public.job_log TO jobber"
q "SET ROLE jobber; SELECT camperso.schedule_job('whoami', \$\$INSERT INTO public.job_log VALUES (current_user, 'whoami')\$\$, '1 second')" >/dev/null
# A non-superuser cannot have a job run as somebody else...
q "SET ROLE jobber; INSERT INTO camperso.jobs (name, command, run_every, owner)
   VALUES ('sneaky', \$\$INSERT INTO public.job_log VALUES (current_user, 'sneaky')\$\$, '1 second', 'postgres')"
assert_eq jobber "$(q "SELECT owner FROM camperso.jobs WHERE name = 'sneaky'")" "a job's owner is the role that scheduled it"
# ...nor rewrite the command of another role's job.
out=$(q "SET ROLE jobber; UPDATE camperso.jobs SET command = 'SELECT 1' WHERE name = 'maintenance'" 2>&1)
case "$out" in *"belongs to role"*) echo "ok - another role's job cannot be rewritten" ;; *) fail "rewrite of another role's job: $out" ;; esac
logged() { [ "$(q "SELECT count(DISTINCT job) FROM public.job_log")" = 2 ]; }
wait_for 30 "both jobs to run" logged
assert_eq jobber "$(q "SELECT string_agg(DISTINCT who, ',') FROM public.job_log")" "jobs run as their owner"
q "SELECT camperso.unschedule_job('whoami'), camperso.unschedule_job('sneaky')" >/dev/null

# ---- a job past its timeout is cancelled ---------------------------------------
q "INSERT INTO camperso.jobs (name, command, run_every, timeout) VALUES ('slow', 'SELECT pg_sleep(30)', '1 hour', '1 second')"
cancelled() { [ "$(q "SELECT count(*) FROM camperso.runs WHERE job = 'slow' AND status = 'failed' AND error LIKE '%statement timeout%'")" = 1 ]; }
wait_for 30 "the slow job to be cancelled" cancelled
echo "ok - a job past its timeout is cancelled and recorded as failed"
assert_eq "$pid" "$(launcher)" "the launcher is still the same process"
# The model keeps being loaded after all that.
ev 2
wait_for 30 "a later load" facts_are 6
echo "ok - loads continue"
