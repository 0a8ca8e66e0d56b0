/*-------------------------------------------------------------------------
 *
 * model.h
 *	  Model stage: SCD2 merge (scd2.c), surrogate key lookup and the
 *	  dimensions catalog (lookup.c), and the periodic job runner the
 *	  launcher calls (jobs.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_MODEL_H
#define CAMPERSO_MODEL_H

#include "postgres.h"

/* The surrogate key every dimension keeps for its "unknown" member. */
#define MODEL_UNKNOWN_SK	(-1)

/*
 * What camperso.dimensions records about a dimension. Strings and arrays
 * live in the caller's memory context.
 */
typedef struct ModelDimension
{
	Oid			dim;
	int			nkey;
	char	  **natural_key;
	bool		scd2;			/* versioned: valid_from/valid_to/is_current */
} ModelDimension;

/* lookup.c */
extern bool ModelReadDimension(Oid dim, ModelDimension *out);
extern Oid	ModelCatalogRelid(const char *name);
extern Oid	ModelExtensionOwner(void);

/*
 * jobs.c: runs the jobs of camperso.jobs that are due, each in its own
 * transaction, failures contained and recorded. Called by the launcher
 * from its main loop, outside any transaction.
 */
extern void CampersoRunPeriodicJobs(void);

#endif							/* CAMPERSO_MODEL_H */
