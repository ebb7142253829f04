/*
 * em_cmd.h - commands run on the sockets of every worker: the backend
 * API's join, leave, disconnect, socket and room listings, and an emit
 * that collects the clients' acks. The worker that asks runs its own part
 * and sends the command to the others through the broker (an
 * EM_BRK_REC_CMD record); each answers with its part, and the parts are
 * merged: numbers added, lists joined.
 *
 * A command is a JSON object:
 *   "nsp": a namespace ("/chat", "/device/42"), or "conf": the index of a
 *          configured namespace, meaning every instance of it, or "all":
 *          true, every namespace;
 *   "rooms": [names]   sockets in any of them (none: every socket; a
 *                      socket id is the room of that socket);
 *   "except": [names]  minus the sockets in any of these;
 * and by kind:
 *   EMIT        "data": the EVENT's JSON array as text (attachments as
 *               {"_placeholder": true, "num": n}, the buffers passed
 *               along), "timeout": ms to wait for the acks
 *               -> {"sockets": n, "acks": [first argument of each ack]}
 *               (binary in an ack comes back as {"$binary": base64})
 *   JOIN, LEAVE "join": [names] -> {"sockets": n}
 *   DISCONNECT  "close": true to close the whole connection -> {"sockets": n}
 *   SOCKETS     "limit": n -> {"sockets": [{"id", "namespace", "rooms",
 *               "data", "user", "address", "transport", "connectedAt",
 *               "recovered", "worker"}], "total": n} (at most limit from each worker);
 *               with "handshake": true each also has "clientId" (its
 *               Engine.IO session) and "handshake" (em_cmd_socket_info)
 *   ROOMS       -> {"rooms": [[namespace, room, sockets], ...]}
 *   SYNC        -> {}: a barrier. A worker answers once it has handled
 *               every record the asking worker sent through the broker
 *               before it (the broker relays one worker's records in
 *               order), so a broadcast routed before it has reached the
 *               sockets of every worker when the command is done.
 */
#ifndef EM_CMD_H
#define EM_CMD_H

#include <jansson.h>
#include <stdint.h>

#include "em_brkrec.h"
#include "em_buf.h"

typedef struct em_sio_socket em_sio_socket_t;

typedef enum {
    EM_CMD_EMIT = 1,
    EM_CMD_JOIN,
    EM_CMD_LEAVE,
    EM_CMD_DISCONNECT,
    EM_CMD_SOCKETS,
    EM_CMD_ROOMS,
    EM_CMD_SYNC,
    EM_CMD_REPLY = 0x100        /* a worker's part, back to the one that asked */
} em_cmd_kind_t;

/* The most sockets a SOCKETS command lists from one worker. */
#define EM_CMD_SOCKETS_MAX 5000

/* The merged parts (the callee's to keep or drop: a new reference);
 * complete is 0 when some worker did not answer within the timeout. */
typedef void (*em_cmd_done_fn)(json_t *result, int complete, void *arg);

/*
 * Run a command on every worker's sockets, this one's first. done() is
 * called once, later (never inside this call), when every live worker
 * answered or timeout_ms passed. cmd stays the caller's; the attachments
 * are referenced. Returns a handle for em_cmd_cancel(), or 0 when the
 * command cannot start (out of memory; done is then never called).
 */
uint64_t em_cmd_run(em_cmd_kind_t kind, json_t *cmd, em_buf_t *const *atts, size_t natt,
                    unsigned timeout_ms, em_cmd_done_fn done, void *arg);

/* The caller no longer wants the answer (its client went away). */
void em_cmd_cancel(uint64_t handle);

/* A command record from another worker, or a reply to one of ours. */
void em_cmd_receive(const em_brk_cmd_msg_t *m);

/* A client's ack: 1 if it answered an EMIT command (taken), else 0. */
int  em_cmd_ack(em_sio_socket_t *s, int64_t id, json_t *args, const em_str_t *atts, size_t natt);

/*
 * A socket as SOCKETS lists it (a new reference, or NULL). With handshake,
 * also "clientId" and "handshake": {url, query, headers, address, xdomain,
 * secure, issued (ms), time}, as Socket.IO's socket.handshake.
 */
json_t *em_cmd_socket_info(em_sio_socket_t *s, int handshake);

/* The socket is going: EMIT commands stop waiting for its ack. */
void em_cmd_socket_gone(em_sio_socket_t *s);

#endif
