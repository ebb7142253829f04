/*
 * em_adminui.h - the @socket.io/admin-ui dashboard's namespace ("admin_ui"
 * in emitd.conf(5)): its login, the host's server_stats every 2 s, the
 * sockets and rooms of every worker, and the dashboard's emit, join, leave
 * and disconnect, as the npm package's instrument() serves them from a
 * Node server.
 */
#ifndef EM_ADMINUI_H
#define EM_ADMINUI_H

/* Register with the Socket.IO layer and start the stats timer (with
 * admin_ui configured; else nothing). EM_OK or EM_ERROR. */
int  em_adminui_init(void);

/* Stop the timer (the worker is leaving its loop). */
void em_adminui_shutdown(void);

#endif
