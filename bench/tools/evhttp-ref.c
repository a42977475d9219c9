/* evhttp-ref.c - reference servers of the benchmark, built and run by
 * bench/bench.py; not part of Veil.
 *
 *   evhttp-ref PORT                  bare libevent evhttp: 204 to everything
 *   evhttp-ref PORT /path/redis.sock  the same, plus one pipelined hiredis
 *                                    async "XADD bench:ref * body <body>" per
 *                                    request (no parsing, no enrichment)
 *
 * They bound what veil-collector can reach with the same HTTP library and
 * the same Redis client: the difference to the collector is the pipeline's
 * own cost. One thread, one event loop, listening on 127.0.0.1:PORT. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

static redisAsyncContext *redis;

static void request_cb(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (redis) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        const char *body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
        const char *argv[] = {"XADD", "bench:ref", "*", "body", body};
        size_t argvlen[] = {4, 9, 1, 4, len};
        redisAsyncCommandArgv(redis, NULL, NULL, 5, argv, argvlen);
    }
    evhttp_send_reply(req, 204, "No Content", NULL);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        fprintf(stderr, "evhttp-ref: redis: %s\n", ac->errstr);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: evhttp-ref PORT [REDIS_UNIX_SOCKET]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
    evhttp_set_max_body_size(http, 65536);
    evhttp_set_max_headers_size(http, 8192);
    evhttp_set_gencb(http, request_cb, NULL);
    if (!evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1]))) {
        fprintf(stderr, "evhttp-ref: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    if (argc == 3) {
        redis = redisAsyncConnectUnix(argv[2]);
        if (!redis || redis->err) {
            fprintf(stderr, "evhttp-ref: cannot connect to redis\n");
            return 1;
        }
        redisLibeventAttach(redis, base);
        redisAsyncSetConnectCallback(redis, connect_cb);
    }
    event_base_dispatch(base);
    return 0;
}
