/*
 * em_tls.h - TLS on a worker's connections (OpenSSL, through libevent's
 * bufferevent_openssl). The worker that the master hands a connection of
 * a TLS listener to does the handshake and then pumps the plaintext to and
 * from one end of a socket pair; the other end is served like any plain
 * connection, so the HTTP layer, the handoffs between workers and every
 * layer above it never see TLS.
 */
#ifndef EM_TLS_H
#define EM_TLS_H

#include <stddef.h>

#include "em_conf.h"

/* Load the certificate and key of conf->tls, as a worker would (emitd -t, a
 * reload): EM_OK, or EM_ERROR with a message naming the file in err. */
int  em_tls_check(const em_conf_t *conf, char *err, size_t errlen);

/*
 * The master, before it forks workers (at start and on a reload): new keys
 * for TLS session tickets, which the workers it forks then share, so a
 * client resumes its session on any of them.
 */
int  em_tls_ticket_keys_new(void);

/* The worker's context, from em_loop.conf (nothing without "tls"). */
int  em_tls_init(void);
void em_tls_shutdown(void);

/*
 * A connection from a TLS listener: start its handshake and return the
 * plaintext end to serve (the pump holds the other), or -1 (fd closed,
 * logged).
 */
int  em_tls_accept(int fd);

/*
 * The client's numeric address behind a plaintext end this worker pumps
 * (into addr, NUL-terminated): 0, or -1 when fd is none of ours.
 */
int  em_tls_peer(int fd, char *addr, size_t len);

/* The plaintext end fd is being closed: forget its address. */
void em_tls_forget(int fd);

#endif
