#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "em_chan.h"
#include "em_log.h"

int
em_chan_pair(int fds[2])
{
    int size = 4 * 1024 * 1024;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        em_log(EM_LOG_ERR, errno, "socketpair() failed");
        return EM_ERROR;
    }
    for (int i = 0; i < 2; i++) {
        (void) setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        (void) setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    return EM_OK;
}

int
em_chan_send(int chan, em_chan_msg_t *msg, const void *data, int fd)
{
    struct msghdr mh;
    struct iovec  iov[2];
    union {
        struct cmsghdr cm;
        char           space[CMSG_SPACE(sizeof(int))];
    } cmsg;

    msg->magic = EM_CHAN_MAGIC;
    msg->version = EM_CHAN_VERSION;
    memset(&mh, 0, sizeof(mh));
    iov[0].iov_base = msg;
    iov[0].iov_len = sizeof(*msg);
    iov[1].iov_base = (void *) data;
    iov[1].iov_len = msg->len;
    mh.msg_iov = iov;
    mh.msg_iovlen = msg->len ? 2 : 1;
    if (fd >= 0) {
        memset(&cmsg, 0, sizeof(cmsg));
        mh.msg_control = cmsg.space;
        mh.msg_controllen = sizeof(cmsg.space);
        cmsg.cm.cmsg_len = CMSG_LEN(sizeof(int));
        cmsg.cm.cmsg_level = SOL_SOCKET;
        cmsg.cm.cmsg_type = SCM_RIGHTS;
        memcpy(CMSG_DATA(&cmsg.cm), &fd, sizeof(int));
    }
    for (;;) {
        if (sendmsg(chan, &mh, MSG_NOSIGNAL) >= 0) {
            return EM_OK;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            return EM_AGAIN;
        }
        em_log(EM_LOG_ERR, errno, "sendmsg() on channel %d failed", chan);
        return EM_ERROR;
    }
}

int
em_chan_recv(int chan, em_chan_msg_t *msg, char *buf, int *fd)
{
    struct msghdr   mh;
    struct iovec    iov[2];
    struct cmsghdr *cm;
    ssize_t         n;
    union {
        struct cmsghdr cm;
        char           space[CMSG_SPACE(sizeof(int) * 4)];
    } cmsg;

    *fd = -1;
    memset(&mh, 0, sizeof(mh));
    iov[0].iov_base = msg;
    iov[0].iov_len = sizeof(*msg);
    iov[1].iov_base = buf;
    iov[1].iov_len = EM_CHAN_MAX_DATA;
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    mh.msg_control = cmsg.space;
    mh.msg_controllen = sizeof(cmsg.space);

    do {
        n = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return EM_AGAIN;
        }
        em_log(EM_LOG_ERR, errno, "recvmsg() on channel %d failed", chan);
        return EM_ERROR;
    }
    if (n == 0) {
        return EM_DECLINED;
    }
    /* Take every descriptor that came, so none leaks whatever the verdict. */
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int f;
                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (*fd < 0) {
                    *fd = f;
                } else {
                    close(f);
                }
            }
        }
    }
    if ((size_t) n < sizeof(*msg) || msg->magic != EM_CHAN_MAGIC
        || msg->version != EM_CHAN_VERSION || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        || msg->len != (size_t) n - sizeof(*msg) || msg->len > EM_CHAN_MAX_DATA
        || msg->type < EM_CHAN_CONN || msg->type > EM_CHAN_DRAIN
        || ((msg->type == EM_CHAN_CONN || msg->type == EM_CHAN_HANDOFF) && *fd < 0)) {
        em_log(EM_LOG_ERR, 0, "invalid message on channel %d (%zd bytes, type %u)", chan, n,
               (size_t) n >= sizeof(*msg) ? msg->type : 0);
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        return EM_ERROR;
    }
    return EM_OK;
}
