/*
 * em_api.h - the backend HTTP API on the admin listener (doc/API.md):
 * emit, join, leave, disconnect, listings of rooms, sockets and presence,
 * and batches of them, each call authenticated by a bearer key of
 * admin.keys. JSON in and out.
 */
#ifndef EM_API_H
#define EM_API_H

/* Register the routes (with an admin listener configured). EM_OK or
 * EM_ERROR. */
int em_api_init(void);

#endif
