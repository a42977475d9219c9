/* reply.h - hiredis replies built in one arena per reply.
 *
 * The roll-up reads batches of thousands of stream entries; hiredis'
 * default reader makes two heap objects per field and value, and freeing
 * them costs as much again. reply_install makes a connection's reader
 * build each reply in a few large chunks instead; such replies must be
 * freed with reply_free (which also frees default replies), never with
 * freeReplyObject. It holds no data beyond the replies themselves. */
#ifndef VEIL_REPLY_H
#define VEIL_REPLY_H

#include <hiredis/hiredis.h>

/* Make rc's reader build replies in arenas. Call once, right after
 * connecting and before any command. */
void reply_install(redisContext *rc);

/* Free a reply read from rc (arena or default); NULL is ignored. */
void reply_free(const redisContext *rc, redisReply *reply);

#endif
