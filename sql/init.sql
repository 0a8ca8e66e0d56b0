-- Runs first: the extension installs in a preloaded server.
CREATE EXTENSION camperso;
SELECT camperso.version();
SELECT extversion FROM pg_extension WHERE extname = 'camperso';
-- The launcher is registered by the preload and publishes its pid.
SELECT camperso.launcher_pid() IS NOT NULL AS launcher_running;
SELECT count(*) AS launchers FROM pg_stat_activity WHERE backend_type = 'camperso launcher';
