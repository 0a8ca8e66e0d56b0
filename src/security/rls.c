/*-------------------------------------------------------------------------
 *
 * rls.c
 *	  Row-level security as the land path meets it.
 *
 * The land path inserts with heap multi-insert, as COPY does, and evaluates
 * no policy expressions; so it refuses a target where row-level security
 * applies to the landing role, except when every policy that could stop an
 * INSERT by that role is unconditionally true. That is what
 * camperso.protect_table() gives camperso_ingest and camperso_admin
 * (WITH CHECK (true)): a worker running as a member of those roles lands
 * into an RLS-protected staging table, while analysts still see only the
 * rows of their apps.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/rel.h"

#include "security/security.h"

/* Whether the policy names the current user, a role it has, or PUBLIC. */
static bool
PolicyAppliesToUser(RowSecurityPolicy *policy, Oid user)
{
	Oid		   *roles = (Oid *) ARR_DATA_PTR(policy->roles);
	int			n = ARR_DIMS(policy->roles)[0];
	int			i;

	for (i = 0; i < n; i++)
	{
		if (roles[i] == ACL_ID_PUBLIC || has_privs_of_role(user, roles[i]))
			return true;
	}
	return false;
}

/* Whether expr is the constant true. */
static bool
ConstTrue(Expr *expr)
{
	return expr != NULL && IsA(expr, Const) &&
		!((Const *) expr)->constisnull && DatumGetBool(((Const *) expr)->constvalue);
}

/*
 * Whether every row the current user inserts into rel passes row-level
 * security without evaluating anything: some permissive INSERT (or ALL)
 * policy for the user checks "true", and every restrictive one too.
 */
bool
SecurityRlsInsertUnchecked(Relation rel)
{
	Oid			user = GetUserId();
	bool		permitted = false;
	ListCell   *lc;

	if (rel->rd_rsdesc == NULL)
		return false;
	foreach(lc, rel->rd_rsdesc->policies)
	{
		RowSecurityPolicy *policy = (RowSecurityPolicy *) lfirst(lc);
		Expr	   *check;

		if (policy->polcmd != ACL_INSERT_CHR && policy->polcmd != '*')
			continue;
		if (!PolicyAppliesToUser(policy, user))
			continue;
		check = policy->with_check_qual ? policy->with_check_qual : policy->qual;
		if (!ConstTrue(check))
		{
			if (!policy->permissive)
				return false;	/* a restrictive check to evaluate */
			continue;
		}
		if (policy->permissive)
			permitted = true;
	}
	return permitted;
}
