/*
 * test_chan.c - the master <-> worker channel (ipc/em_chan.c) on a real
 * socket pair: messages with data and a descriptor arrive whole, an empty
 * channel and a closed peer are told apart, and every malformed datagram is
 * refused with any descriptor it carried closed (never leaked or handed on).
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "em_chan.h"
#include "em_check.h"

static int  em_t_ch[2];
static char em_t_buf[EM_CHAN_MAX_DATA];

static void
setup(void)
{
    ck_assert_int_eq(em_chan_pair(em_t_ch), EM_OK);
}

static void
teardown(void)
{
    close(em_t_ch[0]);
    close(em_t_ch[1]);
}

/* A pipe whose write end travels; its read end tells whether any copy of
 * the write end is still open (EAGAIN) or all are closed (EOF). */
static void
pipe_nb(int p[2])
{
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static int
pipe_writers_gone(int rd)
{
    char c;
    return read(rd, &c, 1) == 0;
}

START_TEST(test_round_trip)
{
    em_chan_msg_t msg = { .type = EM_CHAN_CONN, .slot = 3, .flags = EM_CHAN_F_NOROUTE, .len = 5 },
                  got;
    int           p[2], fd;

    pipe_nb(p);
    ck_assert_int_eq(em_chan_send(em_t_ch[0], &msg, "GET /", p[1]), EM_OK);
    close(p[1]);
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_OK);
    ck_assert_uint_eq(got.type, EM_CHAN_CONN);
    ck_assert_uint_eq(got.slot, 3);
    ck_assert_uint_eq(got.flags, EM_CHAN_F_NOROUTE);
    ck_assert_uint_eq(got.len, 5);
    ck_assert_int_eq(memcmp(em_t_buf, "GET /", 5), 0);
    ck_assert_int_ge(fd, 0);
    /* The descriptor is the pipe's write end. */
    ck_assert_int_eq(write(fd, "x", 1), 1);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    close(fd);
    ck_assert_int_eq(pipe_writers_gone(p[0]), 1);
    close(p[0]);
}
END_TEST

START_TEST(test_load_without_fd)
{
    em_chan_msg_t msg = { .type = EM_CHAN_LOAD, .slot = 1, .arg = (7ull << 32) | 42 }, got;
    int           fd;

    ck_assert_int_eq(em_chan_send(em_t_ch[1], &msg, NULL, -1), EM_OK);
    ck_assert_int_eq(em_chan_recv(em_t_ch[0], &got, em_t_buf, &fd), EM_OK);
    ck_assert_int_eq(fd, -1);
    ck_assert_uint_eq(got.arg, (7ull << 32) | 42);
    ck_assert_uint_eq(got.len, 0);

    /* A reload's DRAIN carries no descriptor either. */
    msg = (em_chan_msg_t) { .type = EM_CHAN_DRAIN };
    ck_assert_int_eq(em_chan_send(em_t_ch[1], &msg, NULL, -1), EM_OK);
    ck_assert_int_eq(em_chan_recv(em_t_ch[0], &got, em_t_buf, &fd), EM_OK);
    ck_assert_uint_eq(got.type, EM_CHAN_DRAIN);
    ck_assert_int_eq(fd, -1);
}
END_TEST

START_TEST(test_largest_prefix)
{
    static char   data[EM_CHAN_MAX_DATA];
    em_chan_msg_t msg = { .type = EM_CHAN_HANDOFF, .slot = 0, .len = EM_CHAN_MAX_DATA }, got;
    int           p[2], fd;

    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (char) (i * 7);
    }
    pipe_nb(p);
    ck_assert_int_eq(em_chan_send(em_t_ch[0], &msg, data, p[1]), EM_OK);
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_OK);
    ck_assert_uint_eq(got.len, EM_CHAN_MAX_DATA);
    ck_assert_int_eq(memcmp(em_t_buf, data, sizeof(data)), 0);
    close(fd);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_empty_and_closed)
{
    em_chan_msg_t got;
    int           fd;

    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_AGAIN);
    ck_assert_int_eq(fd, -1);
    close(em_t_ch[0]);
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_DECLINED);
    em_t_ch[0] = open("/dev/null", O_RDONLY);   /* for teardown */
}
END_TEST

/* A full channel says EM_AGAIN, and the messages already in it arrive. */
START_TEST(test_full)
{
    static char   data[EM_CHAN_MAX_DATA];
    em_chan_msg_t msg = { .type = EM_CHAN_LOAD, .len = EM_CHAN_MAX_DATA }, got;
    int           sent = 0, rc = EM_OK, fd;

    while (sent < 10000 && (rc = em_chan_send(em_t_ch[0], &msg, data, -1)) == EM_OK) {
        sent++;
    }
    ck_assert_int_eq(rc, EM_AGAIN);
    ck_assert_int_gt(sent, 0);
    for (int i = 0; i < sent; i++) {
        ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_OK);
    }
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_AGAIN);
}
END_TEST

/* Send raw bytes as one datagram, with descriptors (nfd of them) attached. */
static void
send_raw(const void *data, size_t len, const int *fds, size_t nfd)
{
    struct msghdr mh;
    struct iovec  iov = { (void *) data, len };
    union {
        struct cmsghdr cm;
        char           space[CMSG_SPACE(sizeof(int) * 3)];
    } cmsg;

    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfd > 0) {
        memset(&cmsg, 0, sizeof(cmsg));
        mh.msg_control = cmsg.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfd);
        cmsg.cm.cmsg_len = CMSG_LEN(sizeof(int) * nfd);
        cmsg.cm.cmsg_level = SOL_SOCKET;
        cmsg.cm.cmsg_type = SCM_RIGHTS;
        memcpy(CMSG_DATA(&cmsg.cm), fds, sizeof(int) * nfd);
    }
    ck_assert_int_eq(sendmsg(em_t_ch[0], &mh, 0), (ssize_t) len);
}

static em_chan_msg_t
good_conn(uint32_t len)
{
    return (em_chan_msg_t) { .magic = EM_CHAN_MAGIC, .version = EM_CHAN_VERSION,
                             .type = EM_CHAN_CONN, .len = len };
}

/* Each malformed datagram (sent with a descriptor): EM_ERROR, and no copy
 * of the descriptor is left open in the receiver. */
enum { BAD_SHORT, BAD_MAGIC, BAD_VERSION, BAD_LEN_MORE, BAD_LEN_LESS, BAD_TYPE_0, BAD_TYPE_HIGH,
       BAD_CONN_NO_FD, BAD_NCASES };

START_TEST(test_bad)
{
    struct {
        em_chan_msg_t m;
        char          data[16];
    } raw;
    size_t        len = sizeof(raw.m);
    int           p[2], fd, with_fd = 1;
    em_chan_msg_t got;

    raw.m = good_conn(0);
    memset(raw.data, 'a', sizeof(raw.data));
    switch (_i) {
    case BAD_SHORT:      len = sizeof(raw.m) - 1; break;
    case BAD_MAGIC:      raw.m.magic ^= 1; break;
    case BAD_VERSION:    raw.m.version = EM_CHAN_VERSION + 1; break;
    case BAD_LEN_MORE:   raw.m.len = 17; len += 16; break;      /* says more than came */
    case BAD_LEN_LESS:   raw.m.len = 3; len += 16; break;       /* says less than came */
    case BAD_TYPE_0:     raw.m.type = 0; break;
    case BAD_TYPE_HIGH:  raw.m.type = EM_CHAN_DRAIN + 1; break;
    case BAD_CONN_NO_FD: with_fd = 0; break;
    }
    pipe_nb(p);
    send_raw(&raw, len, &p[1], with_fd ? 1 : 0);
    close(p[1]);
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_ERROR);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(pipe_writers_gone(p[0]), 1);
    close(p[0]);
    /* The channel goes on: the next message is read. */
    em_chan_msg_t ok = { .type = EM_CHAN_LOAD, .arg = 9 };
    ck_assert_int_eq(em_chan_send(em_t_ch[0], &ok, NULL, -1), EM_OK);
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_OK);
    ck_assert_uint_eq(got.arg, 9);
}
END_TEST

/* Descriptors beyond the first are closed, the first is handed on. */
START_TEST(test_extra_fds)
{
    em_chan_msg_t m = good_conn(0), got;
    int           p1[2], p2[2], p3[2], fd;
    int           fds[3];

    pipe_nb(p1);
    pipe_nb(p2);
    pipe_nb(p3);
    fds[0] = p1[1];
    fds[1] = p2[1];
    fds[2] = p3[1];
    send_raw(&m, sizeof(m), fds, 3);
    close(p1[1]);
    close(p2[1]);
    close(p3[1]);
    ck_assert_int_eq(em_chan_recv(em_t_ch[1], &got, em_t_buf, &fd), EM_OK);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pipe_writers_gone(p1[0]), 0);
    ck_assert_int_eq(pipe_writers_gone(p2[0]), 1);
    ck_assert_int_eq(pipe_writers_gone(p3[0]), 1);
    close(fd);
    ck_assert_int_eq(pipe_writers_gone(p1[0]), 1);
    close(p1[0]);
    close(p2[0]);
    close(p3[0]);
}
END_TEST

static Suite *
chan_suite(void)
{
    Suite *s = suite_create("chan");
    TCase *tc = tcase_create("chan");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_load_without_fd);
    tcase_add_test(tc, test_largest_prefix);
    tcase_add_test(tc, test_empty_and_closed);
    tcase_add_test(tc, test_full);
    tcase_add_loop_test(tc, test_bad, 0, BAD_NCASES);
    tcase_add_test(tc, test_extra_fds);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(chan_suite)
