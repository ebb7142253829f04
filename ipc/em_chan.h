/*
 * em_chan.h - sending and receiving em_chan_msg_t over a channel socket.
 */
#ifndef EM_CHAN_H
#define EM_CHAN_H

#include "em_chan-t.h"
#include "em_core.h"

/* Create a channel pair (nonblocking, close-on-exec, large buffers). */
int em_chan_pair(int fds[2]);

/*
 * Send msg (msg->len bytes of `data` follow) and, if fd >= 0, the descriptor.
 * Returns EM_OK, EM_AGAIN when the channel is full, EM_ERROR (logged).
 */
int em_chan_send(int chan, em_chan_msg_t *msg, const void *data, int fd);

/*
 * Receive one message into *msg and its data into buf (EM_CHAN_MAX_DATA bytes).
 * *fd is the received descriptor or -1. Returns EM_OK, EM_AGAIN (nothing to
 * read), EM_DECLINED (peer closed) or EM_ERROR (bad message: logged; any fd
 * that came with it is closed).
 */
int em_chan_recv(int chan, em_chan_msg_t *msg, char *buf, int *fd);

#endif
