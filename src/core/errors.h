/*-------------------------------------------------------------------------
 *
 * errors.h
 *	  camperso's own SQLSTATE class.
 *
 * Failures that belong to no standard class get a code in class "CP"
 * (camperso), the way TimescaleDB uses "TS". Standard conditions (bad
 * argument, undefined table, insufficient privilege) keep their standard
 * codes; these are for what only camperso can fail at.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_ERRORS_H
#define CAMPERSO_ERRORS_H

#include "utils/elog.h"

/* CP000: generic camperso failure */
#define ERRCODE_CAMPERSO_INTERNAL			MAKE_SQLSTATE('C','P','0','0','0')
/* CP001: the shared library was not preloaded */
#define ERRCODE_CAMPERSO_NOT_PRELOADED		MAKE_SQLSTATE('C','P','0','0','1')
/* CP100..: capture */
#define ERRCODE_CAMPERSO_KAFKA				MAKE_SQLSTATE('C','P','1','0','0')
#define ERRCODE_CAMPERSO_OFFSET_FENCE		MAKE_SQLSTATE('C','P','1','0','1')
#define ERRCODE_CAMPERSO_DECODE				MAKE_SQLSTATE('C','P','1','0','2')
/* CP200..: validation */
#define ERRCODE_CAMPERSO_RULE				MAKE_SQLSTATE('C','P','2','0','0')
/* CP300..: model */
#define ERRCODE_CAMPERSO_MODEL				MAKE_SQLSTATE('C','P','3','0','0')
/* CP700..: security */
#define ERRCODE_CAMPERSO_KEY				MAKE_SQLSTATE('C','P','7','0','0')
/* CP701: an envelope failed authentication (tampered or wrong key) */
#define ERRCODE_CAMPERSO_DECRYPT			MAKE_SQLSTATE('C','P','7','0','1')

#endif							/* CAMPERSO_ERRORS_H */
