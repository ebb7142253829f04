/*
 * em_bench_polling.h - the Engine.IO HTTP long-polling transport of a
 * connection: one keep-alive TCP connection for the GETs (the handshake,
 * then always one long-poll in flight) and one for the POSTs (packets
 * queued while a POST is in flight go in the next one, joined by 0x1e).
 */
#ifndef EM_BENCH_POLLING_H
#define EM_BENCH_POLLING_H

#include "em_bench_conn.h"

/* Dial the GET channel and send the handshake request. Returns EM_OK or
 * EM_ERROR (the connection has failed). */
int em_bench_polling_start(em_bench_conn_t *c);

/* Queue an Engine.IO packet and POST it when no POST is in flight. */
int em_bench_polling_send(em_bench_conn_t *c, char type, const char *data, size_t len);

/* Before the connection's sockets are freed: tell the server the session
 * ends (an Engine.IO close packet, written directly when a POST channel is
 * idle), so that it does not wait for a ping timeout. */
void em_bench_polling_goodbye(em_bench_conn_t *c);

#endif
