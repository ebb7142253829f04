/*
 * em_cluster.h - a worker's side of the cluster-wide state (em_state.h):
 * namespace and room counts, presence, the connection rate limit,
 * monitoring, and Socket.IO connection-state recovery (sessions saved while
 * a socket lives, events logged with offsets, missed events replayed).
 */
#ifndef EM_CLUSTER_H
#define EM_CLUSTER_H

#include <jansson.h>

#include "em_adapter.h"
#include "em_brkrec.h"
#include "em_state.h"

typedef struct em_sio_socket em_sio_socket_t;

extern em_state_t em_cluster;

/* Map the state segment (descriptor fd) as worker `slot`. */
int  em_cluster_init(int fd);

/* After the scripts are loaded: take the share of a previous worker of this
 * slot that died out of presence (its users' offline events go to the
 * scripts) and start the housekeeping timer. */
void em_cluster_start(void);

/* For emitd -t: a private, empty segment of its own (no master, no other
 * process), so that a script's top-level code may call the emitd.* state
 * functions as it would in a worker. Undone by em_cluster_shutdown(). */
int  em_cluster_init_private(void);

void em_cluster_shutdown(void);

/* The client address and User-Agent of a socket ("" when not kept). */
em_str_t em_cluster_socket_ip(const em_sio_socket_t *s);
em_str_t em_cluster_socket_ua(const em_sio_socket_t *s);

/* The namespace's connect_limit for this socket's address: EM_OK to go on,
 * EM_DECLINED when refused (*retry_after ms). */
int  em_cluster_connect_limit(em_sio_socket_t *s, int64_t *retry_after);

/*
 * A CONNECT that carries {pid, offset}, in two steps. em_cluster_recover()
 * takes the stored session: EM_OK gives (*rooms)[0..*nrooms), its old id
 * first and then the rooms to join again (free *buf and *rooms), and the
 * offset to replay from; s->pid is set. EM_DECLINED: connect as a new
 * socket. The caller then subscribes the worker to those rooms on the bus
 * and calls em_cluster_recover_replay(): EM_OK gives the socket its old id
 * (s->id rewritten: call before it is hashed), sets s->recovered and
 * returns in *missed the packets to send after the CONNECT reply; anything
 * else (the log no longer holds the offset) leaves a new socket.
 */
int  em_cluster_recover(em_sio_socket_t *s, json_t *auth, char **buf, em_str_t **rooms,
                        size_t *nrooms, uint64_t *offset);
int  em_cluster_recover_replay(em_sio_socket_t *s, const em_str_t *rooms, size_t nrooms,
                               uint64_t offset, em_plog_pkt_t **missed);

/* The socket is connected (after on_connect accepted it). */
void em_cluster_socket_connected(em_sio_socket_t *s);

/* A connection attempt was refused (type: "auth_failure", "rate_limit", "error"). */
void em_cluster_connect_failed(em_sio_socket_t *s, const char *type, const char *message);

/* The socket is going (reason NULL: it never connected); after its rooms
 * were left. */
void em_cluster_socket_gone(em_sio_socket_t *s, const char *reason);

/* Room membership changed (after the local adapter's change). */
void em_cluster_room_joined(em_sio_socket_t *s, em_str_t room);
void em_cluster_room_left(em_sio_socket_t *s, em_str_t room);

/* Give the socket a presence identity (user empty: none); info is a JSON
 * object's text or NULL. */
int  em_cluster_set_user(em_sio_socket_t *s, em_str_t user, em_str_t info);

/* Application recovery tokens: make one for the socket (or return its own),
 * and redeem one (EM_OK: *out filled, the rooms to join are in out->rooms,
 * *queued the events sent to them since; *lost set when some of those had
 * left the bounded log already). The worker holds the bus keys of those
 * rooms from before the log is read: release them with
 * em_cluster_redeem_done() once the socket has joined the rooms. */
const char *em_cluster_token(em_sio_socket_t *s);
int  em_cluster_redeem(em_sio_socket_t *s, em_str_t token, em_st_session_t *out,
                       struct em_plog_pkt **queued, int *lost);
void em_cluster_redeem_done(em_sio_socket_t *s, const em_st_session_t *e);
/* The next of a stored session's rooms from *off (start at 0): 1 and *room,
 * or 0 at the end (a length past the list ends it too). */
int  em_cluster_session_room(const em_st_session_t *e, size_t *off, em_str_t *room);

/*
 * Build an EVENT without ack for nsp, logging it with an offset when
 * recovery is on: the offset (a string) is appended to args first. `b`
 * says who gets it (NULL: the one socket `self`). Takes the attachments'
 * references as em_sio_pkt_build does. Returns EM_OK or EM_ERROR.
 */
int  em_cluster_event_pkt(em_pkt_t *pkt, em_str_t nsp, json_t *args, em_buf_t **atts, size_t natt,
                          const em_bcast_t *b, const em_sio_socket_t *self);

/* A presence change the broker hands this worker (EM_BRK_KIND_PRESENCE_OFFLINE:
 * a user offline on every host since another host's share went), for the
 * scripts' on_presence. */
void em_cluster_receive(const em_brk_cmd_msg_t *m);

/* Report presence changes to the scripts, then free them. */
void em_cluster_fire(em_pchanges_t *chg);

#endif
