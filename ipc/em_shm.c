/*
 * em_shm.c - the shared segment: created once by the master, mapped by the
 * broker and the workers (and mapped again by any of them that restarts).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "em_brkrec.h"
#include "em_shm.h"
#include "em_log.h"

void *
em_shm_segment_new(const char *name, size_t size, int *fd)
{
    void *base;

    *fd = memfd_create(name, MFD_CLOEXEC);
    if (*fd < 0) {
        em_log(EM_LOG_ERR, errno, "memfd_create(\"%s\") failed", name);
        return NULL;
    }
    if (ftruncate(*fd, (off_t) size) != 0) {
        em_log(EM_LOG_ERR, errno, "ftruncate() of segment %s to %zu bytes failed", name, size);
        close(*fd);
        *fd = -1;
        return NULL;
    }
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    if (base == MAP_FAILED) {
        em_log(EM_LOG_ERR, errno, "mmap() of segment %s failed", name);
        close(*fd);
        *fd = -1;
        return NULL;
    }
    return base;
}

int
em_shm_create(em_shm_t *shm, unsigned nworkers)
{
    em_shm_hdr_t *hdr;

    memset(shm, 0, sizeof(*shm));
    shm->ring_size = em_ring_size(EM_SHM_RING_CAPACITY);
    shm->nworkers = nworkers;
    shm->size = EM_SHM_FILTER_OFFSET(nworkers, nworkers, shm->ring_size);
    if ((shm->base = em_shm_segment_new("emitd-shm", shm->size, &shm->fd)) == NULL) {
        return EM_ERROR;
    }
    hdr = shm->base;
    hdr->magic = EM_SHM_MAGIC;
    hdr->version = EM_SHM_VERSION;
    hdr->nworkers = (uint16_t) nworkers;
    hdr->ring_size = shm->ring_size;
    for (unsigned i = 0; i < nworkers; i++) {
        for (int dir = 0; dir < 2; dir++) {
            em_ring_t r;
            if (em_ring_init(&r, (char *) shm->base + EM_SHM_RING_OFFSET(i, dir, shm->ring_size),
                             shm->ring_size) != EM_OK) {
                return EM_ERROR;
            }
        }
    }
    return EM_OK;
}

int
em_shm_map(em_shm_t *shm, int fd)
{
    struct stat   st;
    em_shm_hdr_t *hdr;

    memset(shm, 0, sizeof(*shm));
    shm->fd = fd;
    if (fstat(fd, &st) != 0 || (size_t) st.st_size < EM_SHM_HDR_SIZE) {
        em_log(EM_LOG_ERR, errno, "fstat() of the shared segment failed or it is too small");
        return EM_ERROR;
    }
    shm->size = (size_t) st.st_size;
    shm->base = mmap(NULL, shm->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm->base == MAP_FAILED) {
        em_log(EM_LOG_ERR, errno, "mmap() of the shared segment failed");
        return EM_ERROR;
    }
    hdr = shm->base;
    if (hdr->magic != EM_SHM_MAGIC || hdr->version != EM_SHM_VERSION
        || hdr->ring_size == 0
        || EM_SHM_FILTER_OFFSET(hdr->nworkers, hdr->nworkers, hdr->ring_size) > shm->size) {
        em_log(EM_LOG_ERR, 0, "the shared segment has a bad header (magic %#x version %u)",
               hdr->magic, hdr->version);
        return EM_ERROR;
    }
    shm->nworkers = hdr->nworkers;
    shm->ring_size = hdr->ring_size;
    return EM_OK;
}

int
em_shm_ring(em_shm_t *shm, unsigned slot, int dir, em_ring_t *ring)
{
    if (slot >= shm->nworkers) {
        return EM_ERROR;
    }
    return em_ring_attach(ring, (char *) shm->base + EM_SHM_RING_OFFSET(slot, dir, shm->ring_size),
                          shm->ring_size);
}

uint16_t *
em_shm_filter(em_shm_t *shm, unsigned slot)
{
    return (uint16_t *) ((char *) shm->base
                         + EM_SHM_FILTER_OFFSET(slot, shm->nworkers, shm->ring_size));
}

uint32_t
em_brk_key_hash(const char *nsp, size_t nsp_len, const char *room, size_t room_len)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */

    for (size_t i = 0; i < nsp_len; i++) {
        h = (h ^ (unsigned char) nsp[i]) * 0x100000001b3ull;
    }
    h = (h ^ (room ? 0x00u : 0x01u)) * 0x100000001b3ull;
    for (size_t i = 0; room != NULL && i < room_len; i++) {
        h = (h ^ (unsigned char) room[i]) * 0x100000001b3ull;
    }
    return (uint32_t) ((h ^ (h >> 32)) & (EM_SHM_FILTER_SLOTS - 1));
}

int
em_brk_wants(em_shm_t *shm, unsigned slot, const void *rec, size_t len)
{
    const uint16_t *f = em_shm_filter(shm, slot);
    em_brk_view_t   v;
    em_str_t        room;

    if (em_brkrec_decode(rec, len, &v) != EM_OK) {
        return 1;       /* let the worker judge it: it logs and drops it */
    }
    /* Every instance of a parameterised namespace (nsp is its pattern):
     * instance names differ per worker, so only "has an instance" counts. */
    if (v.rooms.n == 0 || (v.flags & EM_BRK_F_CONF)) {
        return __atomic_load_n(&f[em_brk_key_hash(v.nsp.data, v.nsp.len, NULL, 0)],
                               __ATOMIC_ACQUIRE) != 0;
    }
    while (em_brk_list_next(&v.rooms, &room)) {
        if (__atomic_load_n(&f[em_brk_key_hash(v.nsp.data, v.nsp.len, room.data, room.len)],
                            __ATOMIC_ACQUIRE) != 0) {
            return 1;
        }
    }
    return 0;
}
