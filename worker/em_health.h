/*
 * em_health.h - the health report (health_path): GET answered with the
 * cluster's state in the shape of photo-events.md's /health.
 */
#ifndef EM_HEALTH_H
#define EM_HEALTH_H

/* Register the route when health_path is configured (EM_OK). */
int em_health_init(void);

#endif
