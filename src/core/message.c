/*-------------------------------------------------------------------------
 *
 * message.c
 *	  Small accessors over the decoded message (message.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "core/message.h"

/*
 * Linear scan: clickstream events carry a dozen or so keys, where a scan
 * beats building a hash per message. With duplicate keys the last one wins,
 * as in jsonb.
 */
CampersoField *
CampersoMessageField(CampersoMessage *msg, const char *name)
{
	int			i;

	for (i = msg->nfields - 1; i >= 0; i--)
	{
		if (strcmp(msg->fields[i].name, name) == 0)
			return &msg->fields[i];
	}
	return NULL;
}
