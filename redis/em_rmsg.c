/*
 * em_rmsg.c - Socket.IO Redis adapter broadcasts <-> emitd's (em_rmsg.h).
 */
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_rmsg.h"

/* ---- the structure check ---- */

static uint64_t
em_rmsg_be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int
em_rmsg_scan(const char *buf, size_t len, unsigned max_depth, size_t *end)
{
    const unsigned char *p = (const unsigned char *) buf;
    uint64_t             left[EM_RMSG_DEPTH_MAX + 1];
    unsigned             depth = 1;
    size_t               pos = 0;

    if (max_depth > EM_RMSG_DEPTH_MAX) {
        max_depth = EM_RMSG_DEPTH_MAX;
    }
    left[0] = 1;
    while (depth > 0) {
        if (left[depth - 1] == 0) {
            depth--;
            continue;
        }
        left[depth - 1]--;
        if (pos >= len) {
            return EM_AGAIN;
        }
        unsigned char b = p[pos++];
        uint64_t      skip = 0, count = 0;
        unsigned      lenbytes = 0;
        int           container = 0;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            skip = 0;
        } else if (b <= 0x8f) {
            container = 1;
            count = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            container = 1;
            count = b & 0x0fu;
        } else if (b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;              /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;              /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;              /* bin32, str32 */
            case 0xc7: lenbytes = 1; skip = 1; break;               /* ext8: + type */
            case 0xc8: lenbytes = 2; skip = 1; break;
            case 0xc9: lenbytes = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                             /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: lenbytes = 2; container = 1; break;          /* array16 */
            case 0xdd: lenbytes = 4; container = 1; break;
            case 0xde: lenbytes = 2; container = 2; break;          /* map16 */
            case 0xdf: lenbytes = 4; container = 2; break;
            default:
                return EM_ERROR;                                    /* 0xc1 */
            }
            if (lenbytes > 0) {
                if (len - pos < lenbytes) {
                    return EM_AGAIN;
                }
                uint64_t n = em_rmsg_be(p + pos, lenbytes);
                pos += lenbytes;
                if (container) {
                    count = container == 2 ? 2 * n : n;
                    container = 1;
                } else {
                    skip += n;
                }
            }
        }
        if (container) {
            /* Every element takes a byte at least. */
            if (count > len - pos) {
                return EM_AGAIN;
            }
            if (depth > max_depth) {
                return EM_ERROR;
            }
            left[depth++] = count;
        } else {
            if (skip > len - pos) {
                return EM_AGAIN;
            }
            pos += (size_t) skip;
        }
    }
    *end = pos;
    return EM_OK;
}

/* ---- decoding ---- */

typedef struct {
    const em_rmsg_limits_t *lim;
    em_str_t               *att;
    size_t                  natt;
    int                     rc;         /* EM_ERROR or EM_DECLINED when it failed */
} em_rmsg_ctx_t;

static json_t *
em_rmsg_json(const msgpack_object *o, unsigned depth, em_rmsg_ctx_t *c)
{
    json_t *v = NULL;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_EXT:            /* notepack's undefined (and Date): null, as JSON has */
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 <= INT64_MAX ? json_integer((json_int_t) o->via.u64)
                                       : json_real((double) o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t) o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
    case MSGPACK_OBJECT_STR:
        if ((v = json_stringn(o->via.str.ptr, o->via.str.size)) == NULL) {
            c->rc = EM_ERROR;           /* not UTF-8 */
        }
        return v;
    case MSGPACK_OBJECT_BIN:
        if (c->natt >= c->lim->max_att) {
            c->rc = EM_DECLINED;
            return NULL;
        }
        c->att[c->natt] = (em_str_t) { o->via.bin.ptr, o->via.bin.size };
        return json_pack("{s:b,s:I}", "_placeholder", 1, "num", (json_int_t) c->natt++);
    case MSGPACK_OBJECT_ARRAY:
        if (depth >= c->lim->max_depth) {
            c->rc = EM_DECLINED;
            return NULL;
        }
        v = json_array();
        for (uint32_t i = 0; v != NULL && i < o->via.array.size; i++) {
            json_t *e = em_rmsg_json(&o->via.array.ptr[i], depth + 1, c);
            if (e == NULL || json_array_append_new(v, e) != 0) {
                json_decref(v);
                v = NULL;
            }
        }
        return v;
    case MSGPACK_OBJECT_MAP:
        if (depth >= c->lim->max_depth) {
            c->rc = EM_DECLINED;
            return NULL;
        }
        v = json_object();
        for (uint32_t i = 0; v != NULL && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t                  *e;
            /* A key must be a string, and without NUL: JSON parsers take no other. */
            if (kv->key.type != MSGPACK_OBJECT_STR
                || memchr(kv->key.via.str.ptr, '\0', kv->key.via.str.size) != NULL) {
                c->rc = EM_ERROR;
                json_decref(v);
                return NULL;
            }
            e = em_rmsg_json(&kv->val, depth + 1, c);
            if (e == NULL
                || json_object_setn_new(v, kv->key.via.str.ptr, kv->key.via.str.size, e) != 0) {
                if (e == NULL && c->rc == 0) {
                    c->rc = EM_ERROR;
                }
                json_decref(v);
                v = NULL;
            }
        }
        return v;
    default:
        c->rc = EM_ERROR;
        return NULL;
    }
}

/* The value of key in map o, or NULL. */
static const msgpack_object *
em_rmsg_get(const msgpack_object *o, const char *key)
{
    size_t n = strlen(key);

    if (o == NULL || o->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n
            && memcmp(k->via.str.ptr, key, n) == 0) {
            return &o->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/* A list of names (rooms, except): absent is empty. */
static int
em_rmsg_names(const msgpack_object *o, const em_rmsg_limits_t *lim, em_str_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
        return EM_OK;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return EM_ERROR;
    }
    if (o->via.array.size > lim->max_rooms) {
        return EM_DECLINED;
    }
    if (o->via.array.size == 0) {
        return EM_OK;
    }
    if ((*out = calloc(o->via.array.size, sizeof(em_str_t))) == NULL) {
        return EM_ERROR;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR) {
            return EM_ERROR;
        }
        if (e->via.str.size > lim->max_name) {
            return EM_DECLINED;
        }
        (*out)[(*n)++] = (em_str_t) { e->via.str.ptr, e->via.str.size };
    }
    return EM_OK;
}

/* The slices msgpack-c gives must be of the message itself. */
static int
em_rmsg_within(const char *buf, size_t len, const em_str_t *s)
{
    return s->len == 0 || (s->data >= buf && (size_t) (s->data - buf) <= len
                           && s->len <= len - (size_t) (s->data - buf));
}

#define EM_RMSG_AS_BROADCAST 0     /* [uid, packet, opts] */
#define EM_RMSG_AS_REQUEST   1     /* {uid, requestId, type: 7, packet, opts} */
#define EM_RMSG_AS_STREAM    2     /* {packet, opts}: the uid is given */

static int
em_rmsg_decode_as(const char *buf, size_t len, const em_rmsg_limits_t *lim, em_rmsg_t *m,
                  int request)
{
    msgpack_unpacked      up;
    const msgpack_object *root, *pkt, *opts, *type, *data, *nsp, *flags, *vol;
    size_t                end = 0, off = 0;
    em_rmsg_t             r;
    em_rmsg_ctx_t         c = { lim, NULL, 0, 0 };
    json_t               *args = NULL;
    int                   rc;

    memset(&r, 0, sizeof(r));
    if ((rc = em_rmsg_scan(buf, len, EM_RMSG_DEPTH_MAX, &end)) != EM_OK || end != len) {
        return rc == EM_OK || rc == EM_AGAIN ? EM_ERROR : rc;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&up);
        return EM_ERROR;
    }
    rc = EM_ERROR;
    root = &up.data;
    if (request == EM_RMSG_AS_STREAM) {
        r.uid = m->uid;
        pkt = em_rmsg_get(root, "packet");
        opts = em_rmsg_get(root, "opts");
        if (pkt == NULL || pkt->type != MSGPACK_OBJECT_MAP) {
            goto done;
        }
    } else if (request == EM_RMSG_AS_REQUEST) {
        /* {uid, requestId, type: 7, packet, opts} */
        const msgpack_object *u = em_rmsg_get(root, "uid"), *id = em_rmsg_get(root, "requestId");
        const msgpack_object *t = em_rmsg_get(root, "type"), *to;
        if (u == NULL || u->type != MSGPACK_OBJECT_STR || id == NULL || id->type != MSGPACK_OBJECT_STR
            || t == NULL || t->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            goto done;
        }
        if (t->via.u64 != 7 || id->via.str.size > lim->max_name) {
            rc = EM_DECLINED;
            goto done;
        }
        r.uid = (em_str_t) { u->via.str.ptr, u->via.str.size };
        r.request_id = (em_str_t) { id->via.str.ptr, id->via.str.size };
        pkt = em_rmsg_get(root, "packet");
        opts = em_rmsg_get(root, "opts");
        to = em_rmsg_get(em_rmsg_get(opts, "flags"), "timeout");
        if (pkt == NULL || pkt->type != MSGPACK_OBJECT_MAP) {
            goto done;
        }
        if (to != NULL && to->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            r.timeout = to->via.u64 > 3600000 ? 3600000 : (int64_t) to->via.u64;
        }
    } else {
        if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 2
            || root->via.array.ptr[0].type != MSGPACK_OBJECT_STR
            || root->via.array.ptr[1].type != MSGPACK_OBJECT_MAP) {
            goto done;
        }
        r.uid = (em_str_t) { root->via.array.ptr[0].via.str.ptr, root->via.array.ptr[0].via.str.size };
        pkt = &root->via.array.ptr[1];
        opts = root->via.array.size > 2 ? &root->via.array.ptr[2] : NULL;
    }
    type = em_rmsg_get(pkt, "type");
    data = em_rmsg_get(pkt, "data");
    nsp = em_rmsg_get(pkt, "nsp");
    if (type == NULL || type->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        goto done;
    }
    if (type->via.u64 != 2 && type->via.u64 != 5) {
        rc = EM_DECLINED;               /* not an EVENT: nothing emitd broadcasts */
        goto done;
    }
    if (data == NULL || data->type != MSGPACK_OBJECT_ARRAY || data->via.array.size == 0
        || data->via.array.ptr[0].type != MSGPACK_OBJECT_STR) {
        goto done;
    }
    if (nsp != NULL && nsp->type != MSGPACK_OBJECT_NIL) {
        if (nsp->type != MSGPACK_OBJECT_STR) {
            goto done;
        }
        r.nsp = (em_str_t) { nsp->via.str.ptr, nsp->via.str.size };
    } else {
        r.nsp = (em_str_t) { "/", 1 };
    }
    if (r.nsp.len == 0 || r.nsp.data[0] != '/' || r.nsp.len > lim->max_name
        || r.uid.len > lim->max_name) {
        rc = r.nsp.len > lim->max_name || r.uid.len > lim->max_name ? EM_DECLINED : EM_ERROR;
        goto done;
    }
    if (opts != NULL && opts->type != MSGPACK_OBJECT_MAP && opts->type != MSGPACK_OBJECT_NIL) {
        goto done;
    }
    if ((rc = em_rmsg_names(em_rmsg_get(opts, "rooms"), lim, &r.rooms, &r.nrooms)) != EM_OK
        || (rc = em_rmsg_names(em_rmsg_get(opts, "except"), lim, &r.except, &r.nexcept)) != EM_OK) {
        goto done;
    }
    rc = EM_ERROR;
    flags = em_rmsg_get(opts, "flags");
    vol = em_rmsg_get(flags, "volatile");
    r.vol = vol != NULL && vol->type == MSGPACK_OBJECT_BOOLEAN && vol->via.boolean;

    /* At most one attachment per byte of the message. */
    if (lim->max_att > 0 && (c.att = calloc(EM_MIN(lim->max_att, len), sizeof(em_str_t))) == NULL) {
        goto done;
    }
    args = em_rmsg_json(data, 1, &c);
    if (args == NULL) {
        rc = c.rc != 0 ? c.rc : EM_ERROR;
        goto done;
    }
    r.data = json_dumps(args, JSON_COMPACT);
    if (r.data == NULL) {
        goto done;
    }
    r.data_len = strlen(r.data);
    r.att = c.att;
    r.natt = c.natt;
    c.att = NULL;
    int inside = (request == EM_RMSG_AS_STREAM || em_rmsg_within(buf, len, &r.uid))
                 && (nsp == NULL || nsp->type == MSGPACK_OBJECT_NIL || em_rmsg_within(buf, len, &r.nsp));
    for (size_t i = 0; inside && i < r.natt; i++) {
        inside = em_rmsg_within(buf, len, &r.att[i]);
    }
    for (size_t i = 0; inside && i < r.nrooms; i++) {
        inside = em_rmsg_within(buf, len, &r.rooms[i]);
    }
    for (size_t i = 0; inside && i < r.nexcept; i++) {
        inside = em_rmsg_within(buf, len, &r.except[i]);
    }
    if (!inside) {
        goto done;
    }
    rc = EM_OK;
done:
    json_decref(args);
    free(c.att);
    msgpack_unpacked_destroy(&up);
    if (rc == EM_OK) {
        *m = r;
    } else {
        em_rmsg_free(&r);
    }
    return rc;
}

int
em_rmsg_decode(const char *buf, size_t len, const em_rmsg_limits_t *lim, em_rmsg_t *m)
{
    return em_rmsg_decode_as(buf, len, lim, m, EM_RMSG_AS_BROADCAST);
}

int
em_rmsg_decode_request(const char *buf, size_t len, const em_rmsg_limits_t *lim, em_rmsg_t *m)
{
    return em_rmsg_decode_as(buf, len, lim, m, EM_RMSG_AS_REQUEST);
}

void
em_rmsg_free(em_rmsg_t *m)
{
    free(m->data);
    free(m->att);
    free(m->rooms);
    free(m->except);
    free(m->own);
    json_decref(m->own_json);
    memset(m, 0, sizeof(*m));
}

/* ---- encoding ---- */

static void
em_rmsg_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* {"$binary": base64} as bin: EM_OK, EM_DECLINED (not one), or EM_ERROR. */
static int
em_rmsg_pack_b64(msgpack_packer *pk, const json_t *v)
{
    json_t        *b64 = json_object_get(v, "$binary");
    size_t         n, out = 0;
    unsigned char *bin;

    if (json_object_size(v) != 1 || !json_is_string(b64)) {
        return EM_DECLINED;
    }
    n = json_string_length(b64);
    if ((bin = malloc(n / 4 * 3 + 3)) == NULL
        || sodium_base642bin(bin, n / 4 * 3 + 3, json_string_value(b64), n, NULL, &out, NULL,
                             sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(bin);
        return EM_ERROR;
    }
    msgpack_pack_bin(pk, out);
    msgpack_pack_bin_body(pk, bin, out);
    free(bin);
    return EM_OK;
}

/*
 * A JSON value as MessagePack, nested at most max deep. Its binaries are
 * attachment placeholders of m, or with m NULL {"$binary": base64} (the
 * acks em_cmd collects).
 */
static int
em_rmsg_pack(msgpack_packer *pk, const json_t *v, unsigned depth, unsigned max,
             const em_rmsg_out_t *m)
{
    const char *key;
    size_t      klen, i;
    json_t     *e;
    int         rc;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        json_t *ph = json_object_get(v, "_placeholder"), *num = json_object_get(v, "num");
        if (m == NULL && (rc = em_rmsg_pack_b64(pk, v)) != EM_DECLINED) {
            return rc;
        }
        if (m != NULL && json_object_size(v) == 2 && json_is_true(ph) && json_is_integer(num)) {
            json_int_t n = json_integer_value(num);
            if (n < 0 || (size_t) n >= m->natt) {
                return EM_ERROR;
            }
            msgpack_pack_bin(pk, m->att[n].len);
            msgpack_pack_bin_body(pk, m->att[n].data, m->att[n].len);
            return EM_OK;
        }
        if (depth >= max) {
            return EM_ERROR;
        }
        msgpack_pack_map(pk, json_object_size(v));
        json_object_keylen_foreach((json_t *) v, key, klen, e) {
            em_rmsg_pack_str(pk, key, klen);
            if (em_rmsg_pack(pk, e, depth + 1, max, m) != EM_OK) {
                return EM_ERROR;
            }
        }
        return EM_OK;
    }
    case JSON_ARRAY:
        if (depth >= max) {
            return EM_ERROR;
        }
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, e) {
            if (em_rmsg_pack(pk, e, depth + 1, max, m) != EM_OK) {
                return EM_ERROR;
            }
        }
        return EM_OK;
    case JSON_STRING:
        em_rmsg_pack_str(pk, json_string_value(v), json_string_length(v));
        return EM_OK;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        return EM_OK;
    case JSON_REAL: {
        double d = json_real_value(v);
        /* JavaScript has one number: an integral one goes as notepack sends it. */
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
            msgpack_pack_int64(pk, (int64_t) d);
        } else {
            msgpack_pack_double(pk, d);
        }
        return EM_OK;
    }
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return EM_OK;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return EM_OK;
    default:
        msgpack_pack_nil(pk);
        return EM_OK;
    }
}

static void
em_rmsg_pack_names(msgpack_packer *pk, const em_str_t *v, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        em_rmsg_pack_str(pk, v[i].data, v[i].len);
    }
}

/* msgpack-c's packers ignore a failed write: note it. */
typedef struct {
    msgpack_sbuffer sb;
    int             failed;
} em_rmsg_sbuf_t;

static int
em_rmsg_write(void *data, const char *buf, size_t len)
{
    em_rmsg_sbuf_t *b = data;

    if (b->failed || msgpack_sbuffer_write(&b->sb, buf, len) != 0) {
        b->failed = 1;
        return -1;
    }
    return 0;
}

int
em_rmsg_encode(const em_rmsg_out_t *m, unsigned max_depth, char **buf, size_t *len)
{
    em_rmsg_sbuf_t  out = { .failed = 0 };
    msgpack_sbuffer *sb = &out.sb;
    msgpack_packer  pk;
    json_error_t    err;
    json_t         *args = json_loadb(m->data.data, m->data.len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                      &err);
    int             rc = EM_ERROR;

    if (args == NULL || !json_is_array(args)
        || (m->drop_last && json_array_remove(args, json_array_size(args) - 1) != 0)) {
        json_decref(args);
        return EM_ERROR;
    }
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, &out, em_rmsg_write);
    msgpack_pack_array(&pk, 3);
    em_rmsg_pack_str(&pk, m->uid.data, m->uid.len);
    msgpack_pack_map(&pk, 3);
    em_rmsg_pack_str(&pk, "type", 4);
    msgpack_pack_int64(&pk, 2);
    em_rmsg_pack_str(&pk, "data", 4);
    if (em_rmsg_pack(&pk, args, 0, max_depth, m) == EM_OK) {
        em_rmsg_pack_str(&pk, "nsp", 3);
        em_rmsg_pack_str(&pk, m->nsp.data, m->nsp.len);
        msgpack_pack_map(&pk, 3);
        em_rmsg_pack_str(&pk, "rooms", 5);
        em_rmsg_pack_names(&pk, m->rooms, m->nrooms);
        em_rmsg_pack_str(&pk, "except", 6);
        em_rmsg_pack_names(&pk, m->except, m->nexcept);
        em_rmsg_pack_str(&pk, "flags", 5);
        msgpack_pack_map(&pk, m->vol ? 1 : 0);
        if (m->vol) {
            em_rmsg_pack_str(&pk, "volatile", 8);
            msgpack_pack_true(&pk);
        }
        rc = out.failed ? EM_ERROR : EM_OK;
    }
    json_decref(args);
    if (rc != EM_OK) {
        msgpack_sbuffer_destroy(sb);
        return EM_ERROR;
    }
    *len = sb->size;
    *buf = msgpack_sbuffer_release(sb);
    return EM_OK;
}

int
em_rmsg_channel(em_str_t key, em_str_t nsp, const em_str_t *room, char *out, size_t cap,
                size_t *len)
{
    size_t need = key.len + 1 + nsp.len + 1 + (room != NULL ? room->len + 1 : 0);
    char  *p = out;

    if (need > cap) {
        return EM_ERROR;
    }
    memcpy(p, key.data, key.len);
    p += key.len;
    *p++ = '#';
    memcpy(p, nsp.data, nsp.len);
    p += nsp.len;
    *p++ = '#';
    if (room != NULL) {
        memcpy(p, room->data, room->len);
        p += room->len;
        *p++ = '#';
    }
    *len = need;
    return EM_OK;
}

int
em_rmsg_encode_ack(em_str_t request_id, const json_t *arg, char **buf, size_t *len)
{
    em_rmsg_sbuf_t  out = { .failed = 0 };
    msgpack_packer  pk;
    int             rc;

    msgpack_sbuffer_init(&out.sb);
    msgpack_packer_init(&pk, &out, em_rmsg_write);
    msgpack_pack_map(&pk, 3);
    em_rmsg_pack_str(&pk, "type", 4);
    msgpack_pack_int64(&pk, 9);                 /* BROADCAST_ACK */
    em_rmsg_pack_str(&pk, "requestId", 9);
    em_rmsg_pack_str(&pk, request_id.data, request_id.len);
    em_rmsg_pack_str(&pk, "packet", 6);
    rc = arg != NULL ? em_rmsg_pack(&pk, arg, 0, EM_RMSG_DEPTH_MAX, NULL)
                     : (msgpack_pack_nil(&pk), EM_OK);
    if (rc != EM_OK || out.failed) {
        msgpack_sbuffer_destroy(&out.sb);
        return EM_ERROR;
    }
    *len = out.sb.size;
    *buf = msgpack_sbuffer_release(&out.sb);
    return EM_OK;
}

int
em_rmsg_encode_server_emit(em_str_t uid, const char *data, size_t dlen, char **buf, size_t *len)
{
    return em_rmsg_encode_server_ask(uid, (em_str_t) { "", 0 }, data, dlen, buf, len);
}

int
em_rmsg_encode_server_ask(em_str_t uid, em_str_t request_id, const char *data, size_t dlen,
                          char **buf, size_t *len)
{
    json_t *d = json_loadb(data, dlen, JSON_REJECT_DUPLICATES, NULL), *req;
    char   *text;

    if (!json_is_array(d) || !json_is_string(json_array_get(d, 0))) {
        json_decref(d);
        return EM_ERROR;
    }
    req = request_id.len == 0
          ? json_pack("{s:s%,s:i,s:o}", "uid", uid.data, uid.len, "type", 6, "data", d)
          : json_pack("{s:s%,s:s%,s:i,s:o}", "uid", uid.data, uid.len, "requestId", request_id.data,
                      request_id.len, "type", 6, "data", d);
    text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (text == NULL) {
        return EM_ERROR;
    }
    *buf = text;
    *len = strlen(text);
    return EM_OK;
}

int
em_rmsg_request_is_from(const char *buf, size_t len, em_str_t uid)
{
    json_t     *req;
    const char *from;
    int         own;

    if (len == 0 || buf[0] != '{' || (req = json_loadb(buf, len, 0, NULL)) == NULL) {
        return 0;
    }
    from = json_string_value(json_object_get(req, "uid"));
    own = from != NULL && strlen(from) == uid.len && memcmp(from, uid.data, uid.len) == 0;
    json_decref(req);
    return own;
}

int
em_rmsg_decode_server_answer(const char *buf, size_t len, em_str_t request_id, json_t **data)
{
    json_t     *r, *type, *d;
    const char *id;

    *data = NULL;
    if (len == 0 || buf[0] != '{' || (r = json_loadb(buf, len, 0, NULL)) == NULL) {
        return EM_DECLINED;
    }
    type = json_object_get(r, "type");
    id = json_string_value(json_object_get(r, "requestId"));
    if (!json_is_integer(type) || json_integer_value(type) != 6 || id == NULL
        || strlen(id) != request_id.len || memcmp(id, request_id.data, request_id.len) != 0) {
        json_decref(r);
        return EM_DECLINED;
    }
    d = json_object_get(r, "data");
    *data = json_incref(d != NULL ? d : json_null());
    json_decref(r);
    return EM_OK;
}

/* ---- the Redis Streams adapter's entries ---- */

/* A list of names from JSON: absent is empty; slices of the JSON's strings. */
static int
em_rmsg_json_names(const json_t *a, const em_rmsg_limits_t *lim, em_str_t **out, size_t *n)
{
    size_t  i;
    json_t *e;

    *out = NULL;
    *n = 0;
    if (a == NULL || json_is_null(a)) {
        return EM_OK;
    }
    if (!json_is_array(a)) {
        return EM_ERROR;
    }
    if (json_array_size(a) > lim->max_rooms) {
        return EM_DECLINED;
    }
    if (json_array_size(a) == 0) {
        return EM_OK;
    }
    if ((*out = calloc(json_array_size(a), sizeof(em_str_t))) == NULL) {
        return EM_ERROR;
    }
    json_array_foreach(a, i, e) {
        if (!json_is_string(e)) {
            return EM_ERROR;
        }
        if (json_string_length(e) > lim->max_name) {
            return EM_DECLINED;
        }
        (*out)[(*n)++] = (em_str_t) { json_string_value(e), json_string_length(e) };
    }
    return EM_OK;
}

/* The JSON variant: {"packet": {type, data, nsp}, "opts": {rooms, except, flags}}. */
static int
em_rmsg_decode_stream_json(em_str_t uid, em_str_t data, const em_rmsg_limits_t *lim, em_rmsg_t *r)
{
    /* NUL in a string is kept, as it is from MessagePack */
    json_t *root = json_loadb(data.data, data.len, JSON_ALLOW_NUL, NULL);
    json_t *pkt, *opts, *type, *args, *nsp;
    int     rc = EM_ERROR;

    r->own_json = root;
    r->uid = uid;
    pkt = json_object_get(root, "packet");
    opts = json_object_get(root, "opts");
    type = json_object_get(pkt, "type");
    args = json_object_get(pkt, "data");
    nsp = json_object_get(pkt, "nsp");
    if (!json_is_object(pkt) || !json_is_integer(type)) {
        return EM_ERROR;
    }
    if (json_integer_value(type) != 2) {
        return EM_DECLINED;
    }
    if (!json_is_array(args) || !json_is_string(json_array_get(args, 0))
        || (nsp != NULL && !json_is_string(nsp)) || (opts != NULL && !json_is_object(opts))) {
        return EM_ERROR;
    }
    r->nsp = nsp != NULL ? (em_str_t) { json_string_value(nsp), json_string_length(nsp) }
                         : (em_str_t) { "/", 1 };
    if (r->nsp.len == 0 || r->nsp.data[0] != '/' || memchr(r->nsp.data, '\0', r->nsp.len) != NULL) {
        return EM_ERROR;
    }
    if (r->nsp.len > lim->max_name || uid.len > lim->max_name) {
        return EM_DECLINED;
    }
    if ((rc = em_rmsg_json_names(json_object_get(opts, "rooms"), lim, &r->rooms, &r->nrooms)) != EM_OK
        || (rc = em_rmsg_json_names(json_object_get(opts, "except"), lim, &r->except, &r->nexcept))
               != EM_OK) {
        return rc;
    }
    r->vol = json_is_true(json_object_get(json_object_get(opts, "flags"), "volatile"));
    /* the depth of the arguments, as a MessagePack one's is bounded */
    if ((r->data = json_dumps(args, JSON_COMPACT)) == NULL) {
        return EM_ERROR;
    }
    r->data_len = strlen(r->data);
    return EM_OK;
}

int
em_rmsg_decode_stream(em_str_t uid, em_str_t nsp, em_str_t type, em_str_t data,
                      const em_rmsg_limits_t *lim, em_rmsg_t *m)
{
    em_rmsg_t r;
    size_t    n = 0;
    int       rc;

    memset(&r, 0, sizeof(r));
    (void) nsp;                 /* the packet's own nsp is the one delivered to */
    if (type.len != 1 || type.data[0] != '3') {
        return EM_DECLINED;     /* a message of another type: not a broadcast */
    }
    if (data.len > 0 && data.data[0] == '{') {
        rc = em_rmsg_decode_stream_json(uid, data, lim, &r);
        if (rc == EM_OK && json_object_get(r.own_json, "requestId") != NULL) {
            rc = EM_DECLINED;   /* a broadcast with acks goes by Pub/Sub */
        }
    } else {
        /* base64 of MessagePack: decoded into a buffer the slices point into */
        if ((r.own = malloc(data.len / 4 * 3 + 3)) == NULL
            || sodium_base642bin((unsigned char *) r.own, data.len / 4 * 3 + 3, data.data, data.len,
                                 NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(r.own);
            return EM_ERROR;
        }
        char *own = r.own;
        r.uid = uid;            /* read by em_rmsg_decode_as() */
        rc = em_rmsg_decode_as(own, n, lim, &r, EM_RMSG_AS_STREAM);
        r.own = own;            /* em_rmsg_decode_as() set r whole */
        if (rc != EM_OK) {
            free(own);
            return rc;
        }
    }
    if (rc != EM_OK) {
        em_rmsg_free(&r);
        return rc;
    }
    *m = r;
    return EM_OK;
}

/* Names as a JSON array of strings, or NULL (out of memory, not UTF-8). */
static json_t *
em_rmsg_json_list(const em_str_t *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < n; i++) {
        json_t *e = json_stringn(v[i].data != NULL ? v[i].data : "", v[i].len);
        if (e == NULL || json_array_append_new(a, e) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* The JSON variant; EM_DECLINED when a name is not UTF-8 (JSON cannot say it). */
static int
em_rmsg_encode_stream_json(const em_rmsg_out_t *m, char **buf, size_t *len)
{
    json_t *args = json_loadb(m->data.data, m->data.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *rooms = em_rmsg_json_list(m->rooms, m->nrooms);
    json_t *except = em_rmsg_json_list(m->except, m->nexcept), *flags = json_object(), *o;
    int     names = rooms != NULL && except != NULL;

    if (flags != NULL && m->vol) {
        json_object_set_new(flags, "volatile", json_true());
    }
    if (!json_is_array(args) || (m->drop_last && json_array_remove(args, json_array_size(args) - 1) != 0)) {
        json_decref(args);
        args = NULL;
    }
    /* JSON.stringify({packet, opts}) */
    o = args != NULL && names && flags != NULL
        ? json_pack("{s:{s:i,s:o,s:s%},s:{s:o,s:o,s:o}}", "packet", "type", 2, "data", args, "nsp",
                    m->nsp.data, m->nsp.len, "opts", "rooms", rooms, "except", except, "flags", flags)
        : NULL;
    if (o == NULL) {
        if (args == NULL || !names || flags == NULL) {
            json_decref(args);
            json_decref(rooms);
            json_decref(except);
            json_decref(flags);
        }
        return !names ? EM_DECLINED : EM_ERROR;
    }
    *buf = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (*buf == NULL) {
        return EM_ERROR;
    }
    *len = strlen(*buf);
    return EM_OK;
}

int
em_rmsg_encode_stream(const em_rmsg_out_t *m, unsigned max_depth, char **buf, size_t *len)
{
    char  *mp, *b64;
    size_t mlen, blen;
    int    rc;

    if (m->natt == 0 && (rc = em_rmsg_encode_stream_json(m, buf, len)) != EM_DECLINED) {
        return rc;
    }
    /* With binary values (or names JSON cannot say): the MessagePack of
     * {packet, opts}, in base64. The
     * broadcast's own encoding is [uid, packet, opts]: its tail after the
     * array head and the uid is packet then opts. */
    if ((rc = em_rmsg_encode(m, max_depth, &mp, &mlen)) != EM_OK) {
        return rc;
    }
    size_t skip = 1 + (m->uid.len < 32 ? 1 : m->uid.len < 256 ? 2 : m->uid.len < 65536 ? 3 : 5)
                  + m->uid.len;
    if (mlen < skip) {
        free(mp);
        return EM_ERROR;
    }
    /* {"packet": <packet>, "opts": <opts>}: a map head and two keys around them */
    size_t plen = 0, olen;
    if (em_rmsg_scan(mp + skip, mlen - skip, EM_RMSG_DEPTH_MAX, &plen) != EM_OK) {
        free(mp);
        return EM_ERROR;
    }
    olen = mlen - skip - plen;
    char *out = malloc(1 + 7 + plen + 5 + olen);
    if (out == NULL) {
        free(mp);
        return EM_ERROR;
    }
    size_t k = 0;
    out[k++] = (char) 0x82;
    out[k++] = (char) 0xa6;
    memcpy(out + k, "packet", 6);
    k += 6;
    memcpy(out + k, mp + skip, plen);
    k += plen;
    out[k++] = (char) 0xa4;
    memcpy(out + k, "opts", 4);
    k += 4;
    memcpy(out + k, mp + skip + plen, olen);
    k += olen;
    free(mp);
    blen = sodium_base64_encoded_len(k, sodium_base64_VARIANT_ORIGINAL);
    if ((b64 = malloc(blen)) == NULL) {
        free(out);
        return EM_ERROR;
    }
    sodium_bin2base64(b64, blen, (const unsigned char *) out, k, sodium_base64_VARIANT_ORIGINAL);
    free(out);
    *buf = b64;
    *len = strlen(b64);
    return EM_OK;
}
