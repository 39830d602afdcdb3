/* The HTTP side of acs-emulator on libmicrohttpd: a thread pool with epoll (where available),
 * bounded request bodies, one JSON log line per request, and injected latency served by
 * suspending the connection and resuming it from a single timer thread. */
#ifndef TV_EMULATOR_SERVER_H
#define TV_EMULATOR_SERVER_H

#include <signal.h>
#include <stdint.h>

struct emu_app;
struct emu_config;
struct emu_server;

/* Starts serving app on cfg->listen (app must outlive the server). 0, TV_ERR_CONFIG (bad listen
 * address) or TV_ERR_IO (bind failed; logged). */
int emu_server_start(struct emu_app *app, const struct emu_config *cfg, struct emu_server **out);
/* The port actually bound (useful with port 0). */
uint16_t emu_server_port(const struct emu_server *s);
/* The host part of the listen address as written for URLs ("127.0.0.1", "[::1]"). */
const char *emu_server_host(const struct emu_server *s);
/* Stops accepting, answers connections waiting on injected latency, stops the daemon and frees.
 * Blocks until every server thread has exited. NULL is a no-op. */
void emu_server_stop(struct emu_server *s);

/* The stop signals of both programs (acs-emulator and its entra stand-in): SIGTERM and SIGINT
 * blocked in every thread (threads started later inherit the mask) so that emu_signals_wait
 * takes them, and SIGPIPE ignored (a broken pipe is an error on that one socket, never a reason
 * to die). Call before starting threads. */
void emu_signals_block(sigset_t *set);
/* Waits for one of the signals emu_signals_block blocked; returns its number. */
int emu_signals_wait(const sigset_t *set);

#endif
