/*-------------------------------------------------------------------------
 *
 * camperso.c
 *	  Module entry: PG_MODULE_MAGIC and _PG_init, which hands over to each
 *	  stage's initialisation.
 *
 * Loaded without shared_preload_libraries (a plain CREATE EXTENSION or the
 * first call of a camperso function), only the GUCs are defined: the
 * SQL-callable parts work, and anything needing the workers or shared
 * memory reports that the library is not preloaded (CoreRequirePreload).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "core/core.h"
#include "capture/capture.h"
#include "observe/observe.h"
#include "security/security.h"
#include "validate/validate.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	/* Stage GUCs first: CoreDefineGucs reserves the prefix at its end. */
	SecurityDefineGucs();
	CoreDefineGucs(process_shared_preload_libraries_in_progress);
	ValidateInit();

	if (!process_shared_preload_libraries_in_progress)
		return;

	CoreShmemInit();
	CaptureShmemInit();
	SourceStatsShmemInit();
	CaptureRegisterLauncher();
}
