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
#include <event2/buffer.h>
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
em_health_serve(em_http_conn_t *h, const em_http_req_t *req, const char *body, size_t len)
{
    em_monitor_figures_t fig;
    struct timespec      now;
    struct tm            tm;
    char                 iso[40] = "";
    json_t              *workers, *doc;
    unsigned             down = 0;

    (void) body;
    (void) len;
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

/* ---- GET <metrics_path>: Prometheus text format 0.0.4 ---- */

/* A label value with \, " and newlines escaped. */
static void
em_metrics_label(struct evbuffer *b, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            evbuffer_add_printf(b, "\\%c", *p);
        } else if (*p == '\n') {
            evbuffer_add(b, "\\n", 2);
        } else {
            evbuffer_add(b, p, 1);
        }
    }
}

static void
em_metrics_one(struct evbuffer *b, const char *name, const char *type, const char *help,
               uint64_t v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                        (unsigned long long) v);
}

static void
em_metrics_serve(em_http_conn_t *h, const em_http_req_t *req, const char *body, size_t len)
{
    const em_conf_t     *conf = em_loop.conf;
    em_monitor_figures_t fig;
    em_recovery_stats_t  rec;
    struct evbuffer     *b;

    (void) body;
    (void) len;
    if (req->method != EM_HTTP_GET) {
        h->keep_alive = 0;
        em_http_conn_respond(h, 405, "text/plain; charset=UTF-8", "Method Not Allowed", 18);
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        em_http_conn_respond(h, 500, "text/plain; charset=UTF-8", "Internal Server Error", 21);
        return;
    }
    em_monitor_read(&em_cluster, em_state_now(), &fig);
    em_recovery_stats(&em_cluster, em_state_now(), &rec);
    em_metrics_one(b, "emitd_sockets", "gauge",
                   "Socket.IO sockets connected now, on every worker.", fig.active);
    em_metrics_one(b, "emitd_sockets_peak", "gauge",
                   "The most sockets connected at once since the figures were reset.", fig.peak);
    em_metrics_one(b, "emitd_socket_connects_total", "counter",
                   "Sockets admitted to a namespace (reset by emitd.metrics_reset()).", fig.total);
    em_metrics_one(b, "emitd_socket_refusals_total", "counter",
                   "CONNECTs refused: connect_limit, api_key, jwt or on_connect.", fig.failed);
    em_metrics_one(b, "emitd_socket_disconnects_total", "counter",
                   "Sockets that left.", fig.closed);
    em_metrics_one(b, "emitd_limit_violations_total", "counter",
                   "Clients closed for breaking a limit or the protocol.", fig.violations);
    em_metrics_one(b, "emitd_rooms", "gauge",
                   "Rooms with a socket in them, every namespace, every worker.",
                   em_rooms_active(&em_cluster));
    em_metrics_one(b, "emitd_recovery_sessions", "gauge",
                   "Connection-state recovery sessions kept (connected and disconnected).",
                   rec.pid_sessions);
    em_metrics_one(b, "emitd_recovery_tokens", "gauge", "Application recovery tokens kept.",
                   rec.tokens);
    em_metrics_one(b, "emitd_packet_log_records", "gauge",
                   "Packets in the recovery log.", rec.log_records);
    em_metrics_one(b, "emitd_packet_log_evicted_total", "counter",
                   "Packets that left the recovery log for room before they expired.",
                   rec.log_evicted);
    evbuffer_add_printf(b, "# HELP emitd_namespace_sockets Sockets in a namespace, every worker "
                        "(configured names; a parameterised one under its pattern).\n"
                        "# TYPE emitd_namespace_sockets gauge\n");
    for (size_t i = 0; i < conf->nnsps; i++) {
        em_str_t name = { conf->nsps[i].name, strlen(conf->nsps[i].name) };
        evbuffer_add_printf(b, "emitd_namespace_sockets{namespace=\"");
        em_metrics_label(b, conf->nsps[i].name);
        evbuffer_add_printf(b, "\"} %u\n", em_room_size(&em_cluster, name, (em_str_t) { "", 0 }));
    }
    evbuffer_add_printf(b, "# HELP emitd_worker_up Whether the worker process runs (1) or is "
                        "being restarted (0).\n# TYPE emitd_worker_up gauge\n");
    for (unsigned i = 0; i < em_loop.nworkers; i++) {
        evbuffer_add_printf(b, "emitd_worker_up{worker=\"%u\"} %d\n", i + 1,
                            em_state_slot_pid(&em_cluster, i) != 0);
    }
    if (em_loop.nworkers > 1) {
        em_metrics_one(b, "emitd_broker_up", "gauge",
                       "Whether the broker process runs (1) or is being restarted (0).",
                       em_state_broker_pid(&em_cluster) != 0);
    }
    em_http_conn_respond_body_type(h, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

int
em_health_init(void)
{
    const em_conf_t *conf = em_loop.conf;

    /* On the public listeners where configured; on the admin listener,
     * always, at /health and /metrics. */
    if ((conf->metrics_path != NULL
         && em_http_conn_route(conf->metrics_path, EM_HTTP_ROUTE_PUBLIC, em_metrics_serve) != EM_OK)
        || (conf->health_path != NULL
            && em_http_conn_route(conf->health_path, EM_HTTP_ROUTE_PUBLIC, em_health_serve) != EM_OK)) {
        return EM_ERROR;
    }
    if (conf->admin != NULL
        && (em_http_conn_route("/health", EM_HTTP_ROUTE_ADMIN, em_health_serve) != EM_OK
            || em_http_conn_route("/metrics", EM_HTTP_ROUTE_ADMIN, em_metrics_serve) != EM_OK)) {
        return EM_ERROR;
    }
    return EM_OK;
}
