/*
 * em_sid.h - identifiers handed to clients.
 *
 * An Engine.IO session id is 20 characters of base64url; its first character
 * is the base64url digit of the owning worker's slot, so the master (and any
 * worker) can route a request by looking at the id alone. The rest is random
 * from libsodium's CSPRNG, so ids cannot be guessed.
 */
#ifndef EM_SID_H
#define EM_SID_H

#include <stddef.h>

#define EM_SID_LEN 20

/* Write a new session id for `slot` (0..63) into out[EM_SID_LEN + 1]. */
void em_sid_new(unsigned slot, char *out);

/* A random id with no routing information (Socket.IO socket ids). */
void em_sid_random(char *out);

/* The worker slot encoded in a session id, or -1 if it is not one of ours. */
int em_sid_slot(const char *sid, size_t len);

#endif
