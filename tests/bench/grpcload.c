/*
 * grpcload: closed-loop load of unary gRPC calls whose request bodies vary.
 *
 * h2load sends one fixed body; this sends the bodies of a file in order. The file holds
 * pre-framed gRPC messages (1 flag byte, 4-byte big-endian length, protobuf), written by
 * tests/bench/frames.py with the generated stubs. One thread, poll(2), libnghttp2 over
 * C h2c connections with M concurrent streams each; every response's :status and
 * grpc-status are checked (trailers-only answers too). Calls finishing in the warm-up are
 * not counted; the run ends after the measured window, in-flight calls are dropped.
 *
 *   grpcload -p PORT -P /pkg.Service/Method -f FRAMES [-a 'Bearer KEY'] [-c CONNS]
 *            [-m STREAMS] [-d SECONDS] [-w WARMUP_SECONDS]
 *
 * Prints one JSON object: requests and errors in the window, req/s, p50/p90/p99/max ms,
 * its own CPU seconds (getrusage) in the window and in all, bodies sent and how often the
 * file was wrapped around (0: no body was sent twice), non-zero grpc-status counts.
 *
 * Build: gcc -O2 -Wall -Wextra -o grpcload grpcload.c -lnghttp2   (Debian libnghttp2-dev)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define MAX_STREAMS 1024
#define MAX_FILE_BYTES (1L << 31)
#define MAX_SAMPLES (20u * 1000 * 1000) /* latency samples kept (80 MB); counting goes on */
#define OUT_CAP (4u << 20)               /* bytes buffered for one connection's socket */
#define N_CODES 17                       /* gRPC status codes 0..16 */

typedef struct {
    const uint8_t *data;
    uint32_t len;
} body_t;

typedef struct conn conn_t;

typedef struct {
    conn_t *conn;
    body_t body;
    size_t off;
    double started;
    int http_status;
    int grpc_status; /* -1: none seen */
    int in_use;
} call_t;

struct conn {
    int fd;
    int dead;
    nghttp2_session *session;
    call_t calls[MAX_STREAMS];
    int free_slots[MAX_STREAMS];
    int n_free;
    uint8_t *out;
    size_t out_len;
};

/* Settings. */
static const char *path, *auth, *frames_file;
static int port, n_conns = 1, n_streams = 64;
static double duration_s = 10, warmup_s = 2;
static char authority[64];

/* The bodies, in the order they are sent. */
static body_t *bodies;
static size_t n_bodies, cursor;
static uint64_t sent, wraps;

/* Results in the measured window. */
static double window_start, window_end;
static uint64_t ok, errors, code_counts[N_CODES], http_errors, resets, other_codes;
static uint32_t *samples;
static size_t n_samples, cap_samples;
static char first_error[256];
static int connection_errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    fprintf(stderr, "grpcload: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(2);
}

static void load_frames(void) {
    int fd = open(frames_file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) die(frames_file);
    if (st.st_size <= 0 || st.st_size > MAX_FILE_BYTES) die("frames file size");
    uint8_t *data = malloc(st.st_size);
    if (!data) die("malloc");
    for (off_t got = 0; got < st.st_size;) {
        ssize_t n = read(fd, data + got, st.st_size - got);
        if (n <= 0) die("read frames");
        got += n;
    }
    close(fd);
    size_t cap = 1024;
    bodies = malloc(cap * sizeof *bodies);
    for (off_t at = 0; at < st.st_size;) {
        if (st.st_size - at < 5 || data[at] != 0) die("frame header");
        uint32_t len = ((uint32_t)data[at + 1] << 24) | ((uint32_t)data[at + 2] << 16) |
                       ((uint32_t)data[at + 3] << 8) | data[at + 4];
        if ((off_t)(5 + len) > st.st_size - at) die("frame length");
        if (n_bodies == cap) bodies = realloc(bodies, (cap *= 2) * sizeof *bodies);
        if (!bodies) die("realloc");
        bodies[n_bodies++] = (body_t){data + at, 5 + len};
        at += 5 + len;
    }
}

static body_t next_body(void) {
    body_t body = bodies[cursor++];
    sent++;
    if (cursor == n_bodies) {
        cursor = 0;
        wraps++;
    }
    return body;
}

static void record(call_t *call, double finished, int error_code) {
    if (finished < window_start || finished >= window_end) return;
    int good = error_code == 0 && call->http_status == 200 && call->grpc_status == 0;
    if (good) {
        ok++;
    } else {
        errors++;
        if (error_code != 0) resets++;
        else if (call->http_status != 200) http_errors++;
        else if (call->grpc_status > 0 && call->grpc_status < N_CODES) code_counts[call->grpc_status]++;
        else other_codes++; /* grpc-status missing or out of range */
    }
    if (n_samples == cap_samples && cap_samples < MAX_SAMPLES) {
        cap_samples = cap_samples ? cap_samples * 2 : 65536;
        if (cap_samples > MAX_SAMPLES) cap_samples = MAX_SAMPLES;
        samples = realloc(samples, cap_samples * sizeof *samples);
        if (!samples) die("realloc samples");
    }
    if (n_samples < cap_samples) samples[n_samples++] = (uint32_t)((finished - call->started) * 1e6);
}

/* -- nghttp2 callbacks ----------------------------------------------------------------- */

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user) {
    (void)s, (void)id, (void)user;
    call_t *call = source->ptr;
    size_t left = call->body.len - call->off;
    size_t n = left < length ? left : length;
    memcpy(buf, call->body.data + call->off, n);
    call->off += n;
    if (call->off == call->body.len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user) {
    (void)flags, (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    call_t *call = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!call) return 0;
    char text[16];
    size_t n = valuelen < sizeof text - 1 ? valuelen : sizeof text - 1;
    if (namelen == 7 && !memcmp(name, ":status", 7)) {
        memcpy(text, value, n), text[n] = 0;
        call->http_status = atoi(text);
    } else if (namelen == 11 && !memcmp(name, "grpc-status", 11)) {
        memcpy(text, value, n), text[n] = 0;
        call->grpc_status = atoi(text);
    } else if (namelen == 12 && !memcmp(name, "grpc-message", 12) && !first_error[0]) {
        snprintf(first_error, sizeof first_error, "%.*s", (int)valuelen, (const char *)value);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user) {
    (void)s, (void)flags, (void)id, (void)data, (void)len, (void)user;
    return 0; /* response messages are not decoded; the status is in the trailers */
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user) {
    conn_t *conn = user;
    call_t *call = nghttp2_session_get_stream_user_data(s, id);
    if (!call) return 0;
    record(call, now(), (int)error_code);
    call->in_use = 0;
    conn->free_slots[conn->n_free++] = (int)(call - conn->calls);
    return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *user) {
    (void)s;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        ((conn_t *)user)->dead = 1;
        connection_errors++;
    }
    return 0;
}

/* -- connections ------------------------------------------------------------------------ */

static void submit(conn_t *conn) {
    call_t *call = &conn->calls[conn->free_slots[--conn->n_free]];
    *call = (call_t){conn, next_body(), 0, now(), 0, -1, 1};
    nghttp2_nv nva[7];
    int n = 0;
#define NV(k, v) nva[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), \
                                         NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}
    NV(":method", "POST");
    NV(":scheme", "http");
    NV(":authority", authority);
    NV(":path", path);
    NV("content-type", "application/grpc");
    NV("te", "trailers");
    if (auth) NV("authorization", auth);
#undef NV
    nghttp2_data_provider provider = {.source.ptr = call, .read_callback = read_body};
    if (nghttp2_submit_request(conn->session, NULL, nva, n, &provider, call) < 0) die("submit");
}

static void open_conn(conn_t *conn) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    conn->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (conn->fd < 0 || connect(conn->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    int one = 1;
    setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(conn->fd, F_SETFL, fcntl(conn->fd, F_GETFL) | O_NONBLOCK);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    if (nghttp2_session_client_new(&conn->session, cb, conn) != 0) die("session");
    nghttp2_session_callbacks_del(cb);
    /* Large windows, as h2load's defaults (-w 30 -W 30), so flow control never waits. */
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 30) - 1}};
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0, (1 << 30) - 1);
    conn->out = malloc(OUT_CAP);
    if (!conn->out) die("malloc");
    for (int i = 0; i < n_streams; i++) conn->free_slots[conn->n_free++] = n_streams - 1 - i;
}

static void lose(conn_t *conn, const char *why) {
    if (conn->dead) return;
    conn->dead = 1;
    connection_errors++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "connection: %s", why);
}

/* Write what nghttp2 has queued; keep what the socket does not take. */
static void flush(conn_t *conn) {
    for (int rounds = 0; rounds < 1024 && !conn->dead; rounds++) {
        if (conn->out_len == 0) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(conn->session, &data);
            if (n < 0) return lose(conn, nghttp2_strerror((int)n));
            if (n == 0) return;
            if ((size_t)n > OUT_CAP) return lose(conn, "frame too large");
            memcpy(conn->out, data, n);
            conn->out_len = n;
        }
        ssize_t w = write(conn->fd, conn->out, conn->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            return lose(conn, strerror(errno));
        }
        memmove(conn->out, conn->out + w, conn->out_len - w);
        conn->out_len -= w;
        if (conn->out_len) return;
    }
}

static void receive(conn_t *conn) {
    static uint8_t buf[1 << 16];
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = read(conn->fd, buf, sizeof buf);
        if (n == 0) return lose(conn, "closed by server");
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) lose(conn, strerror(errno));
            return;
        }
        ssize_t used = nghttp2_session_mem_recv(conn->session, buf, n);
        if (used < 0) return lose(conn, nghttp2_strerror((int)used));
    }
}

/* -- main -------------------------------------------------------------------------------- */

static double pct(double p) {
    if (!n_samples) return -1;
    size_t i = (size_t)(p / 100 * (n_samples - 1) + 0.5);
    return samples[i] / 1000.0;
}

static int by_value(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: grpcload -p PORT -P PATH -f FRAMES [-a AUTHORIZATION] [-c CONNS] "
                    "[-m STREAMS] [-d SECONDS] [-w WARMUP_SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int opt; (opt = getopt(argc, argv, "p:P:f:a:c:m:d:w:")) != -1;) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'P': path = optarg; break;
        case 'f': frames_file = optarg; break;
        case 'a': auth = optarg; break;
        case 'c': n_conns = atoi(optarg); break;
        case 'm': n_streams = atoi(optarg); break;
        case 'd': duration_s = atof(optarg); break;
        case 'w': warmup_s = atof(optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || !path || !frames_file || n_conns < 1 || n_conns > MAX_CONNS ||
        n_streams < 1 || n_streams > MAX_STREAMS || duration_s <= 0 || duration_s > 3600 ||
        warmup_s < 0 || warmup_s > 600)
        usage();
    snprintf(authority, sizeof authority, "127.0.0.1:%d", port);
    load_frames();

    static conn_t conns[MAX_CONNS];
    struct pollfd fds[MAX_CONNS];
    for (int i = 0; i < n_conns; i++) open_conn(&conns[i]);
    double started = now();
    window_start = started + warmup_s;
    window_end = window_start + duration_s;
    double cpu_at_start = -1, cpu_at_end = -1;

    /* One iteration per poll wake-up; bounded by the clock (poll waits at most 5 ms). */
    for (double t = started; t < window_end; t = now()) {
        if (cpu_at_start < 0 && t >= window_start) cpu_at_start = cpu_seconds();
        int alive = 0;
        for (int i = 0; i < n_conns; i++) {
            conn_t *c = &conns[i];
            while (!c->dead && c->n_free > 0) submit(c);
            flush(c);
            fds[i] = (struct pollfd){c->fd, c->dead ? 0 : POLLIN, 0};
            if (!c->dead && c->out_len) fds[i].events |= POLLOUT;
            alive += !c->dead;
        }
        if (!alive) break;
        if (poll(fds, n_conns, 5) < 0 && errno != EINTR) die("poll");
        for (int i = 0; i < n_conns; i++) {
            if (conns[i].dead) continue;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) receive(&conns[i]);
            if (fds[i].revents & POLLOUT) flush(&conns[i]);
        }
    }
    cpu_at_end = cpu_seconds();
    if (cpu_at_start < 0) cpu_at_start = cpu_at_end;
    int in_flight = 0;
    for (int i = 0; i < n_conns; i++) in_flight += n_streams - conns[i].n_free;

    qsort(samples, n_samples, sizeof *samples, by_value);
    printf("{\"requests\": %llu, \"errors\": %llu, \"rps\": %.1f, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
           "\"cpu_s\": %.3f, \"cpu_total_s\": %.3f, \"duration_s\": %.1f, \"warmup_s\": %.1f, "
           "\"connections\": %d, \"streams\": %d, \"bodies\": %zu, \"sent\": %llu, "
           "\"wraps\": %llu, \"in_flight_dropped\": %d, \"connection_errors\": %d, "
           "\"http_errors\": %llu, \"resets\": %llu, \"missing_status\": %llu, \"grpc_errors\": {",
           (unsigned long long)(ok + errors), (unsigned long long)errors,
           (ok + errors) / duration_s, pct(50), pct(90), pct(99), pct(100),
           cpu_at_end - cpu_at_start, cpu_at_end, duration_s, warmup_s, n_conns, n_streams,
           n_bodies, (unsigned long long)sent, (unsigned long long)wraps, in_flight,
           connection_errors, (unsigned long long)http_errors, (unsigned long long)resets,
           (unsigned long long)other_codes);
    const char *sep = "";
    for (int code = 1; code < N_CODES; code++) {
        if (!code_counts[code]) continue;
        printf("%s\"%d\": %llu", sep, code, (unsigned long long)code_counts[code]);
        sep = ", ";
    }
    printf("}, \"first_error\": \"");
    for (const char *p = first_error; *p; p++) putchar(*p == '"' || *p == '\\' || *p < 0x20 ? '?' : *p);
    printf("\"}\n");
    return 0;
}
