/*
 * em_brkrec.h - the codec of the broadcast records workers exchange through
 * the broker (layout: em_brkrec-t.h). Pure: no I/O, no globals, no
 * allocation. The encoder writes into a buffer the caller sized with
 * em_brkrec_size(); the decoder checks every field against the record's
 * length and returns slices of the record itself, with the rooms, excepts
 * and attachments as lists to walk with em_brk_list_next().
 */
#ifndef EM_BRKREC_H
#define EM_BRKREC_H

#include <stddef.h>
#include <stdint.h>

#include "em_brkrec-t.h"
#include "em_core.h"

/* A broadcast to encode, as slices the caller owns. */
typedef struct {
    uint16_t        origin;         /* the worker slot publishing it */
    uint16_t        flags;          /* EM_BRK_F_* */
    uint32_t        conf_index;     /* with EM_BRK_F_CONF; 0 without */
    em_str_t        nsp;
    const em_str_t *rooms;          /* none: every socket of the namespace */
    size_t          nrooms;
    const em_str_t *except;
    size_t          nexcept;
    em_str_t        data;           /* the EVENT's JSON array */
    const em_str_t *att;            /* binary attachments */
    size_t          natt;
} em_brk_msg_t;

/* Why a broadcast has no record (em_brkrec_size()). */
#define EM_BRK_BAD_FLAGS    1   /* an unknown flag, or conf_index without EM_BRK_F_CONF */
#define EM_BRK_BAD_NSP      2   /* a namespace of more than EM_BRK_NAME_MAX bytes */
#define EM_BRK_BAD_NROOMS   3   /* more than EM_BRK_LIST_MAX rooms */
#define EM_BRK_BAD_ROOM     4   /* a room name of more than EM_BRK_NAME_MAX bytes */
#define EM_BRK_BAD_NEXCEPT  5   /* more than EM_BRK_LIST_MAX except-rooms */
#define EM_BRK_BAD_EXCEPT   6   /* an except-room name of more than EM_BRK_NAME_MAX bytes */
#define EM_BRK_BAD_DATA     7   /* data of more than UINT32_MAX bytes */
#define EM_BRK_BAD_NATT     8   /* more than EM_BRK_ATT_MAX attachments */
#define EM_BRK_BAD_ATT      9   /* an attachment of more than UINT32_MAX bytes */
#define EM_BRK_BAD_SIZE     10  /* the record would not fit in a size_t */

typedef struct {
    int    what;                /* EM_BRK_BAD_* */
    size_t value;               /* the length or count that is too large */
    size_t index;               /* which room, except-room or attachment */
} em_brk_fault_t;

/*
 * The bytes the record of m takes: EM_OK and *size, or EM_ERROR with what
 * is wrong in *fault (which may be NULL). Nothing is ever truncated: a name
 * too long for its 16-bit length makes the whole broadcast fail here.
 */
int em_brkrec_size(const em_brk_msg_t *m, size_t *size, em_brk_fault_t *fault);

/*
 * Write the record of m into buf: EM_OK with its length in *len, EM_ERROR
 * if em_brkrec_size() refuses m or cap is less than that size (buf is then
 * untouched).
 */
int em_brkrec_encode(const em_brk_msg_t *m, void *buf, size_t cap, size_t *len);

/* A list of a decoded record: n entries of (len, bytes), len 2 or 4 bytes. */
typedef struct {
    const char *p;              /* the next entry */
    const char *end;            /* the end of the list's bytes */
    size_t      n;              /* entries left */
    unsigned    width;          /* bytes of each length field: 2 or 4 */
} em_brk_list_t;

/* A decoded record: slices of the record's own bytes. */
typedef struct {
    uint16_t      origin;
    uint16_t      flags;
    uint32_t      conf_index;
    em_str_t      nsp;
    em_brk_list_t rooms;
    em_brk_list_t except;
    em_str_t      data;
    em_brk_list_t att;
} em_brk_view_t;

/*
 * Decode the record of len bytes at rec into *v: EM_OK, or EM_ERROR (v is
 * then unspecified) when any part runs past len, bytes follow the last
 * attachment, or the version, flags, reserved field, conf_index or
 * attachment count are not what em_brkrec_encode() writes. An accepted
 * record re-encodes to exactly its own bytes. rec needs no alignment.
 */
int em_brkrec_decode(const void *rec, size_t len, em_brk_view_t *v);

/* em_brkrec_decode() without the view: EM_OK or EM_ERROR. */
int em_brkrec_validate(const void *rec, size_t len);

/* The next entry of a list into *out: 1, or 0 at its end (and on a list
 * that is not one em_brkrec_decode() gave). */
int em_brk_list_next(em_brk_list_t *l, em_str_t *out);

/* A command record (EM_BRK_REC_CMD) as slices the caller owns, or as a
 * decoder returns them (slices of the record). */
typedef struct {
    uint16_t        kind;
    uint16_t        origin;
    uint16_t        target;         /* a worker slot or EM_BRK_ALL */
    uint64_t        req;
    em_str_t        data;           /* JSON text */
    const em_str_t *att;            /* encoding: the attachments */
    size_t          natt;
    em_brk_list_t   atts;           /* decoding: the attachments */
} em_brk_cmd_msg_t;

/* The bytes m's record takes: EM_OK and *size, or EM_ERROR (kind 0, data
 * over UINT32_MAX bytes, more than EM_BRK_ATT_MAX attachments or one over
 * UINT32_MAX bytes, or a size past size_t). */
int em_brkcmd_size(const em_brk_cmd_msg_t *m, size_t *size);
/* Write m's record into buf: EM_OK and *len, or EM_ERROR (buf untouched). */
int em_brkcmd_encode(const em_brk_cmd_msg_t *m, void *buf, size_t cap, size_t *len);
/* Decode a command record: EM_OK, or EM_ERROR when a part runs past len,
 * bytes follow the last attachment, or the version, kind or attachment
 * count are not what em_brkcmd_encode() writes. rec needs no alignment. */
int em_brkcmd_decode(const void *rec, size_t len, em_brk_cmd_msg_t *m);
/* The target of a command record, read without decoding the rest (the
 * broker's routing): a slot, EM_BRK_ALL, or EM_BRK_ALL for a record too
 * short to have one (the workers judge it). */
unsigned em_brkcmd_target(const void *rec, size_t len);

#endif
