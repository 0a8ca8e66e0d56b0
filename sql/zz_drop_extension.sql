-- DROP EXTENSION leaves nothing behind, and the extension can come back.
DROP EXTENSION camperso CASCADE;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'camperso';
SELECT count(*) AS functions FROM pg_proc WHERE proname LIKE 'camperso%' OR prosrc LIKE 'camperso_%';
SELECT count(*) AS relations FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'camperso';
SELECT count(*) AS types FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'camperso';
CREATE EXTENSION camperso;
SELECT camperso.version();
