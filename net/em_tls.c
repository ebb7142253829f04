/*
 * em_tls.c - TLS on a worker's connections.
 *
 * The master cannot read a TLS connection's request line to route it, so
 * it hands the connection to the least loaded worker. That worker runs the
 * handshake (OpenSSL through bufferevent_openssl: certificate chain and
 * key from emitd.conf, TLS 1.2 at least, ALPN http/1.1) and pumps the
 * plaintext both ways between the TLS connection and one end of an
 * AF_UNIX socket pair. The other end is served as a plain connection: the
 * HTTP layer routes its requests by sid as usual, and a request for another
 * worker's session moves that end to it through the master while the pump
 * stays here. Back-pressure: a side whose peer has EM_TLS_HIGH bytes
 * waiting stops reading until they are under half of it. Either side's end
 * closes the other once what it had is written.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "em_log.h"
#include "em_loop.h"
#include "em_tls.h"

#define EM_TLS_HIGH (256 * 1024)

typedef struct em_tls_pump {
    int                 plain;        /* the end the HTTP layer serves (the key) */
    struct bufferevent *tls;          /* the client's connection */
    struct bufferevent *pipe;         /* our end of the pair */
    unsigned            closing:1;    /* one side ended: the other flushes, then goes */
    char                addr[48];
    UT_hash_handle      hh;
} em_tls_pump_t;

static SSL_CTX       *em_tls_ctx;
static unsigned char  em_tls_ticket_keys[80];   /* name, HMAC and AES keys (OpenSSL 3) */
static int            em_tls_have_keys;
static em_tls_pump_t *em_tls_pumps;       /* by plain */
static em_tls_pump_t *em_tls_gone;        /* forgotten by HTTP, still pumping */

/* The first OpenSSL error on the thread's queue, as text. */
static const char *
em_tls_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0) {
        snprintf(buf, len, "unknown error");
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

/* ALPN: HTTP/1.1, the only protocol served; a client that offers none of
 * it goes on without ALPN. */
static int
em_tls_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    (void) ssl;
    (void) arg;

    if (SSL_select_next_proto((unsigned char **) out, outlen, h11, sizeof(h11) - 1, in, inlen)
        == OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *
em_tls_ctx_new(const em_conf_tls_t *t, char *err, size_t errlen)
{
    char     e[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        snprintf(err, errlen, "tls: %s", em_tls_error(e, sizeof(e)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, t->min_version == EM_CONF_TLS_1_3 ? TLS1_3_VERSION
                                                                          : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, t->certificate) != 1) {
        snprintf(err, errlen, "tls: cannot load the certificate chain %s: %s", t->certificate,
                 em_tls_error(e, sizeof(e)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "tls: the key %s does not match the certificate %s", t->key,
                     t->certificate);
            ERR_clear_error();
        } else {
            snprintf(err, errlen, "tls: cannot load the key %s: %s", t->key,
                     em_tls_error(e, sizeof(e)));
        }
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls: the key %s does not match the certificate %s", t->key,
                 t->certificate);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, em_tls_alpn, NULL);
    if (em_tls_have_keys
        && SSL_CTX_set_tlsext_ticket_keys(ctx, em_tls_ticket_keys, sizeof(em_tls_ticket_keys)) != 1) {
        ERR_clear_error();      /* each worker keeps keys of its own: resumption on it only */
    }
    return ctx;
}

int
em_tls_ticket_keys_new(void)
{
    if (RAND_bytes(em_tls_ticket_keys, sizeof(em_tls_ticket_keys)) != 1) {
        ERR_clear_error();
        em_tls_have_keys = 0;
        return EM_ERROR;
    }
    em_tls_have_keys = 1;
    return EM_OK;
}

int
em_tls_check(const em_conf_t *conf, char *err, size_t errlen)
{
    SSL_CTX *ctx;

    if (conf->tls == NULL) {
        return EM_OK;
    }
    if ((ctx = em_tls_ctx_new(conf->tls, err, errlen)) == NULL) {
        return EM_ERROR;
    }
    SSL_CTX_free(ctx);
    return EM_OK;
}

int
em_tls_init(void)
{
    char err[512];

    if (em_loop.conf->tls == NULL) {
        return EM_OK;
    }
    if ((em_tls_ctx = em_tls_ctx_new(em_loop.conf->tls, err, sizeof(err))) == NULL) {
        em_log(EM_LOG_ERR, 0, "%s", err);
        return EM_ERROR;
    }
    return EM_OK;
}

static void
em_tls_free(em_tls_pump_t *p)
{
    if (p->plain >= 0) {
        HASH_DEL(em_tls_pumps, p);
    } else {
        HASH_DELETE(hh, em_tls_gone, p);
    }
    if (p->tls != NULL) {
        SSL *ssl = bufferevent_openssl_get_ssl(p->tls);
        if (ssl != NULL) {
            (void) SSL_shutdown(ssl);        /* close_notify, if it fits now */
        }
        bufferevent_free(p->tls);            /* the SSL and the socket too */
    }
    if (p->pipe != NULL) {
        bufferevent_free(p->pipe);
    }
    free(p);
}

void
em_tls_shutdown(void)
{
    em_tls_pump_t *p, *tmp;

    HASH_ITER(hh, em_tls_pumps, p, tmp) {
        em_tls_free(p);
    }
    HASH_ITER(hh, em_tls_gone, p, tmp) {
        em_tls_free(p);
    }
    SSL_CTX_free(em_tls_ctx);
    em_tls_ctx = NULL;
}

static struct bufferevent *
em_tls_other(const em_tls_pump_t *p, const struct bufferevent *b)
{
    return b == p->tls ? p->pipe : p->tls;
}

/* Both sides' output written: a closing pump goes. */
static int
em_tls_flushed(em_tls_pump_t *p)
{
    return evbuffer_get_length(bufferevent_get_output(p->tls)) == 0
           && evbuffer_get_length(bufferevent_get_output(p->pipe)) == 0;
}

static void
em_tls_read_cb(struct bufferevent *b, void *arg)
{
    em_tls_pump_t      *p = arg;
    struct bufferevent *to = em_tls_other(p, b);

    if (p->closing) {
        evbuffer_drain(bufferevent_get_input(b), evbuffer_get_length(bufferevent_get_input(b)));
        return;
    }
    bufferevent_write_buffer(to, bufferevent_get_input(b));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= EM_TLS_HIGH) {
        bufferevent_disable(b, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, EM_TLS_HIGH / 2, 0);
    }
}

static void
em_tls_write_cb(struct bufferevent *b, void *arg)
{
    em_tls_pump_t      *p = arg;
    struct bufferevent *from = em_tls_other(p, b);

    if (p->closing) {
        if (em_tls_flushed(p)) {
            em_tls_free(p);
        }
        return;
    }
    if (!(bufferevent_get_enabled(from) & EV_READ)) {
        bufferevent_setwatermark(b, EV_WRITE, 0, 0);
        bufferevent_enable(from, EV_READ);
    }
}

static void
em_tls_event_cb(struct bufferevent *b, short what, void *arg)
{
    em_tls_pump_t *p = arg;

    if (what & BEV_EVENT_CONNECTED) {
        bufferevent_set_timeouts(p->tls, NULL, NULL);    /* the handshake is done */
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
        return;
    }
    if ((b == p->tls && (what & BEV_EVENT_ERROR)) || (what & BEV_EVENT_TIMEOUT)) {
        /* A failed handshake or a broken connection: nothing more to say. */
        char e[256];
        if (ERR_peek_error() != 0) {
            em_log_debug("TLS connection from %s: %s", p->addr, em_tls_error(e, sizeof(e)));
        }
        ERR_clear_error();          /* nothing left for another connection's calls */
        /* The plaintext side goes now: it has no one to answer. */
        em_tls_free(p);
        return;
    }
    /* One side ended: the other gets what is left (within write_timeout),
     * then goes too. */
    unsigned       ms = em_loop.conf->limits.write_timeout;
    struct timeval wt = { ms / 1000, (ms % 1000) * 1000 };
    p->closing = 1;
    bufferevent_disable(p->tls, EV_READ);
    bufferevent_disable(p->pipe, EV_READ);
    bufferevent_setwatermark(p->tls, EV_WRITE, 0, 0);
    bufferevent_setwatermark(p->pipe, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(p->tls, NULL, &wt);
    bufferevent_set_timeouts(p->pipe, NULL, &wt);
    if (em_tls_flushed(p)) {
        em_tls_free(p);
    }
}

int
em_tls_accept(int fd)
{
    int            sp[2];
    em_tls_pump_t *p;
    SSL           *ssl;

    if (em_tls_ctx == NULL) {
        em_log(EM_LOG_ERR, 0, "a TLS connection without a TLS context: closed");
        close(fd);
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
        em_log(EM_LOG_ERR, errno, "socketpair() for a TLS connection failed");
        close(fd);
        return -1;
    }
    p = calloc(1, sizeof(*p));
    ssl = p != NULL ? SSL_new(em_tls_ctx) : NULL;
    if (ssl == NULL) {
        em_log(EM_LOG_ERR, 0, "no memory for a TLS connection");
        free(p);
        close(fd);
        close(sp[0]);
        close(sp[1]);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t               sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *) &ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, p->addr, sizeof(p->addr));
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, p->addr, sizeof(p->addr));
        }
    }
    p->plain = sp[1];
    p->tls = bufferevent_openssl_socket_new(em_loop.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    p->pipe = p->tls != NULL ? bufferevent_socket_new(em_loop.base, sp[0], BEV_OPT_CLOSE_ON_FREE
                                                                         | BEV_OPT_DEFER_CALLBACKS)
                             : NULL;
    if (p->tls == NULL || p->pipe == NULL) {
        em_log(EM_LOG_ERR, 0, "no memory for a TLS connection");
        if (p->tls != NULL) {
            bufferevent_free(p->tls);
        } else {
            SSL_free(ssl);
            close(fd);
        }
        close(sp[0]);
        close(sp[1]);
        free(p);
        return -1;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(p->tls, 1);
    bufferevent_setcb(p->tls, em_tls_read_cb, em_tls_write_cb, em_tls_event_cb, p);
    bufferevent_setcb(p->pipe, em_tls_read_cb, em_tls_write_cb, em_tls_event_cb, p);
    /* The handshake in request_timeout, as a plain client's request. */
    unsigned       ms = em_loop.conf->limits.request_timeout;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    bufferevent_set_timeouts(p->tls, &tv, NULL);
    bufferevent_enable(p->tls, EV_READ | EV_WRITE);
    bufferevent_enable(p->pipe, EV_READ | EV_WRITE);
    HASH_ADD_INT(em_tls_pumps, plain, p);
    return sp[1];
}

int
em_tls_peer(int fd, char *addr, size_t len)
{
    em_tls_pump_t *p;

    HASH_FIND_INT(em_tls_pumps, &fd, p);
    if (p == NULL || len == 0) {
        return -1;
    }
    snprintf(addr, len, "%s", p->addr);
    return 0;
}

void
em_tls_forget(int fd)
{
    em_tls_pump_t *p;

    HASH_FIND_INT(em_tls_pumps, &fd, p);
    if (p != NULL) {
        HASH_DEL(em_tls_pumps, p);
        p->plain = -1;
        HASH_ADD(hh, em_tls_gone, plain, sizeof(int), p);
    }
}
