/*
 * em_broker_store.c - another host's store writes, made here
 * (em_broker_store.h). A set or a delete is made unless the key holds a
 * value set later (by the writers' clocks: the last writer wins); an incr
 * adds its amount and a push appends, so counters agree once every host
 * has every write, and lists hold the same items (in the order each host
 * heard them). What cannot be made (a key of another kind here, a full
 * store) is counted and logged, once a second at most.
 */
#include <string.h>

#include "em_broker_store.h"
#include "em_log.h"
#include "em_rstore.h"

static struct {
    em_state_t *st;
    char        uid[8];
    size_t      uid_len;
    uint64_t    applied, refused;
    int64_t     logged;
} em_bs;

void
em_broker_store_start(em_state_t *st, em_str_t uid)
{
    memset(&em_bs, 0, sizeof(em_bs));
    em_bs.st = st;
    em_bs.uid_len = EM_MIN(uid.len, sizeof(em_bs.uid));
    memcpy(em_bs.uid, uid.data, em_bs.uid_len);
}

static void
em_bs_refused(const char *why, em_str_t key, int64_t now)
{
    em_bs.refused++;
    if (now - em_bs.logged >= 1000) {
        em_log(EM_LOG_WARN, 0, "redis: another host's store write of key \"%.*s\" not made here: %s "
               "(%llu so far)", (int) EM_MIN(key.len, 64), key.data, why,
               (unsigned long long) em_bs.refused);
        em_bs.logged = now;
    }
}

void
em_broker_store_message(const char *msg, size_t len)
{
    em_rstore_op_t op;
    em_str_t       uid;
    int64_t        now = em_state_now(), out;
    uint32_t       n;
    int            rc, why = 0;

    if (em_bs.st == NULL) {
        return;
    }
    rc = em_rstore_decode(msg, len, EM_ST_KV_KEY_MAX, EM_ST_KV_VALUE_MAX, &uid, &op);
    if (rc != EM_OK) {
        em_bs_refused(rc == EM_DECLINED ? "a key or value over the store's limits" : "not one",
                      (em_str_t) { "?", 1 }, now);
        return;
    }
    if (uid.len == em_bs.uid_len && memcmp(uid.data, em_bs.uid, uid.len) == 0) {
        return;                 /* this host's own, back from Redis */
    }
    switch (op.op) {
    case EM_RSTORE_SET:
        rc = em_kv_set_at(em_bs.st, op.key, op.value, op.ttl, now, op.written, &why);
        break;
    case EM_RSTORE_DEL:
        rc = em_kv_del_at(em_bs.st, op.key, now, op.written);
        break;
    case EM_RSTORE_INCR:
        rc = em_kv_incr(em_bs.st, op.key, op.num, op.ttl, now, &out, &why);
        break;
    default:
        rc = em_kv_push(em_bs.st, op.key, op.value, op.cap, op.ttl, now, &n, &why);
        break;
    }
    if (rc == EM_ERROR) {
        em_bs_refused(why == EM_KV_NOT_INT ? "the key holds something other than an integer here"
                      : why == EM_KV_NOT_LIST ? "the key holds something other than a list here"
                                              : "the store is full", op.key, now);
    } else {
        em_bs.applied++;
    }
}
