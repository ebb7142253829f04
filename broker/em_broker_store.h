/*
 * em_broker_store.h - the scripts' store across hosts: the writes another
 * host's scripts made to emitd.store, heard from Redis (<key>-store#,
 * redis/em_rstore.h), made to this host's store too.
 */
#ifndef EM_BROKER_STORE_H
#define EM_BROKER_STORE_H

#include <stddef.h>

#include "em_state.h"

void em_broker_store_start(em_state_t *st, em_str_t uid);
void em_broker_store_message(const char *msg, size_t len);

#endif
