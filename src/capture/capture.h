/*-------------------------------------------------------------------------
 *
 * capture.h
 *	  Capture stage: the launcher and the Kafka source workers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPERSO_CAPTURE_H
#define CAMPERSO_CAPTURE_H

#include "postgres.h"

extern void CaptureRegisterLauncher(void);
extern PGDLLEXPORT void CampersoLauncherMain(Datum main_arg);

#endif							/* CAMPERSO_CAPTURE_H */
