/*
 * em_health.c - GET <health_path>: the cluster's health as JSON, in the
 * shape of photo-events.md's /health, from the shared state, so that any
 * worker answers for all of them:
 *
 *   {"status": "ok", "timestamp": "2026-12-07T04:40:00.000Z",
 *    "details": {"websocket": {"status": "healthy", "connectedClients": 5,
 *                              "activeRooms": 10},
 *                "workers": [{"worker": 1, "status": "up"}, ...],
 *                "broker": {"status": "up"}}}       (with several workers)
 *
 * 200 when every worker and the broker are up; 503, "status": "degraded",
 * while one is down (between its death and its restart).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_cluster.h"
#include "em_health.h"
#include "em_http_conn.h"
#include "em_log.h"
#include "em_loop.h"

static void
em_health_serve(em_http_conn_t *h, const em_http_req_t *req)
{
    em_monitor_figures_t fig;
    struct timespec      now;
    struct tm            tm;
    char                 iso[40] = "";
    json_t              *workers, *doc;
    unsigned             down = 0;

    if (req->method != EM_HTTP_GET) {
        h->keep_alive = 0;
        em_http_conn_respond(h, 405, "text/plain; charset=UTF-8", "Method Not Allowed", 18);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm) != NULL) {
        size_t n = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(iso + n, sizeof(iso) - n, ".%03ldZ", now.tv_nsec / 1000000);
    }
    em_monitor_read(&em_cluster, em_state_now(), &fig);
    workers = json_array();
    for (unsigned i = 0; workers != NULL && i < em_loop.nworkers; i++) {
        int up = em_state_slot_pid(&em_cluster, i) != 0;
        down += !up;
        json_array_append_new(workers, json_pack("{s:I,s:s}", "worker", (json_int_t) i + 1,
                                                 "status", up ? "up" : "down"));
    }
    /* With several workers, the broker carries the broadcasts between them. */
    int broker = em_loop.nworkers > 1;
    int broker_up = broker && em_state_broker_pid(&em_cluster) != 0;
    down += broker && !broker_up;
    doc = json_pack("{s:s,s:s,s:{s:{s:s,s:I,s:I},s:o}}",
                    "status", down ? "degraded" : "ok",
                    "timestamp", iso,
                    "details",
                    "websocket",
                    "status", down ? "degraded" : "healthy",
                    "connectedClients", (json_int_t) fig.active,
                    "activeRooms", (json_int_t) em_rooms_active(&em_cluster),
                    "workers", workers);
    if (doc != NULL && broker) {
        json_object_set_new(json_object_get(doc, "details"), "broker",
                            json_pack("{s:s}", "status", broker_up ? "up" : "down"));
    }
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text == NULL) {
        em_http_conn_respond(h, 500, "text/plain; charset=UTF-8", "Internal Server Error", 21);
        return;
    }
    em_http_conn_respond(h, down ? 503 : 200, "application/json", text, strlen(text));
    free(text);
}

int
em_health_init(void)
{
    if (em_loop.conf->health_path == NULL) {
        return EM_OK;
    }
    return em_http_conn_route(em_loop.conf->health_path, em_health_serve);
}
