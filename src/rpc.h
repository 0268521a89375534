/* rpc.h - HTTP transport to the node's RPC API (/api/v0), over libcurl.
 *
 * Every call is a POST with bounded waits. Easy handles are pooled so connections are kept alive
 * and reused across calls; any thread may call at any time. Errors come back as -errno with a
 * human-readable reason; the mapping from node messages to errno lives here so every caller
 * agrees on it (see rpc_classify_error()).
 *
 * After a call that got no answer at all within its deadline (not even a status line: Kubo
 * sends none while it looks for content it lacks), the calls of the next 2 s first check that
 * the node answers anything (POST version, 1 s). A live node answers at once and the call gets
 * its full deadline; a silent one fails the call after that second, and stays suspect. So a
 * hung node costs a program one timeout, not one per retry, while a live node that misses one
 * CID gives the next calls their full deadlines.
 *
 * A call the node answered with its own deadline passed ("context deadline exceeded": it looked
 * for the content all that time), after at least half of ours, makes the calls with the same
 * command and arguments (the CID or path) fail at once with -ETIMEDOUT for RPC_MISS_KEEP_MS: the
 * kernel sends the lookups of one name one after the other, and each would wait its own
 * timeout.
 */
#ifndef IPFSFS_RPC_H
#define IPFSFS_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "multiaddr.h"

struct rpc;

struct rpc_config {
    const struct api_endpoint *endpoint;
    unsigned timeout_ms;    /* bound on every request (connect + answer) */
    const char *auth;       /* API.Authorizations secret ("bearer:T", "basic:u:p", ...), or NULL */
    const char *cacert;     /* CA bundle for https, or NULL for the system default */
    size_t pool_size;       /* easy handles kept for reuse */
    /* Proxy URL for the connection to the node, or NULL: none. The environment's http_proxy,
     * HTTPS_PROXY, ALL_PROXY... are never used: they would see the Authorization header. */
    const char *proxy;
    /* A secret is refused (rpc_new fails with -EPERM, the reason logged) over plain http to an
     * address that is not loopback (see api_endpoint_private), unless this is set. */
    bool allow_plain_auth;
    /* Calls that wait on the node (no answer yet RPC_WAIT_MS after they were sent, as for a
     * CID the node is still looking for) at once: at most max_waits in all (0: 16) and
     * max_waits_per_key with the same first argument, e.g. one CID (0: a quarter of max_waits,
     * at least 1). A call past either bound fails at once with -EAGAIN: missing content cannot
     * hold every thread of the mount while other content waits. */
    unsigned max_waits, max_waits_per_key;
};

/* A call has waited this long without an answer: it counts against max_waits. */
#define RPC_WAIT_MS 1000u
/* With stall_ms, each this many bytes (either way) must move within stall_ms. */
#define RPC_PROGRESS_BYTES (256u << 10)
/* The first bytes of an error body that are read; the rest is not (the transfer is cut). */
#define RPC_MAX_ERROR_BODY 4096u

struct rpc_arg {
    const char *key;
    const char *value; /* NULL for a bare boolean flag "key=true" */
};

/* Where the response body goes. Return 0 to continue, or -errno to abort the transfer (that
 * errno is returned by the call; -ECANCELED is not counted as an error in the stats). A sink may
 * block for a while (flow control): that time does not count against stall_ms.
 * With stall_ms, the sink is also called with len 0 (data "") about once a second while the
 * call waits for bytes (a heartbeat), so that it can give up on its own deadline. */
typedef int (*rpc_sink_fn)(void *ud, const char *data, size_t len);

/* Request body supplier for uploads: fill buf, return bytes (0 = end) or -errno. */
typedef ssize_t (*rpc_source_fn)(void *ud, char *buf, size_t len);

struct rpc_upload {
    rpc_source_fn source;
    void *ud;
    const char *content_type; /* e.g. "multipart/form-data; boundary=..." */
    int64_t length;           /* -1 if unknown (chunked) */
};

struct rpc_call_opts {
    /* Overall time limit for this call in ms; 0 = the configured timeout. For long transfers
     * (streamed reads, uploads) set stall_ms instead: no overall limit, but the call fails when
     * RPC_PROGRESS_BYTES did not move (either way, time in the sink excluded) within stall_ms:
     * a stalled node, and a node that trickles, hold a call for stall_ms at most per
     * RPC_PROGRESS_BYTES. */
    unsigned timeout_ms;
    unsigned stall_ms;
    bool no_node_timeout;     /* do not send timeout= to the node */
    /* The answer is the content's own bytes (cat): a 200 in JSON is no such answer, but
     * something else (a proxy's page, a body of filler): EIO at its first byte. */
    bool bytes;
    const struct rpc_upload *upload;
};

/* A collected reply. */
struct rpc_buf {
    char *data; /* NUL-terminated, malloc'd */
    size_t len;
    size_t max; /* refuse bodies larger than this (the call fails: -EIO); 0 = 16 MiB */
};

int rpc_global_init(void);
void rpc_global_cleanup(void);

int rpc_new(const struct rpc_config *cfg, struct rpc **out);
void rpc_free(struct rpc *r);

/* Every call ends by CLOCK_MONOTONIC ms mono_ms, those in flight too (within about a second:
 * curl's progress calls) and new ones get what is left: -ETIMEDOUT after it. For an unmount,
 * whose --unmount-wait must hold whatever the node does. */
void rpc_end_by(struct rpc *r, uint64_t mono_ms);

/* When an upload last moved RPC_PROGRESS_BYTES more toward the node (CLOCK_MONOTONIC ms; 0:
 * none yet). */
uint64_t rpc_upload_moved_ms(struct rpc *r);

/* Run command cmd ("cat", "files/stat", ...) with the given query arguments. The body goes to
 * sink on success (HTTP 200 with no stream-error trailer). On failure returns -errno and, if
 * err is not NULL, writes the reason (the node's message when it gave one). */
int rpc_call(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
             const struct rpc_call_opts *opts, rpc_sink_fn sink, void *ud, char *err,
             size_t errlen);

/* Convenience: collect the body into buf (buf->data freed by the caller with free()). */
int rpc_call_buf(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
                 const struct rpc_call_opts *opts, struct rpc_buf *buf, char *err, size_t errlen);

/* The header line "Authorization: ..." for a secret in Kubo's API.Authorizations forms:
 * "bearer:TOKEN" or a bare "TOKEN" (Bearer), "basic:USER:PASS" (encoded here) or
 * "basic:<base64>" (Basic). The IPFS Cluster REST API takes the same. malloc'd: the caller
 * wipes (explicit_bzero) and frees it. NULL when out of memory. Pure. */
char *rpc_auth_header(const char *secret);

/* Map a node error message (Kubo or js-ipfs wording) to an errno. Pure. */
int rpc_classify_error(const char *msg);

/* Extract the message from an error body: JSON {"Message"} / {"message"} when it parses, else the
 * text itself (trimmed). Writes into out. Pure. */
void rpc_error_message(const char *body, size_t len, bool is_json, char *out, size_t outlen);

/* Counters for --stats. */
struct rpc_stats {
    uint64_t requests, errors, bytes_in, bytes_out;
    int64_t in_flight;
    uint64_t waiting;       /* calls counted against max_waits now */
    uint64_t waits_refused; /* calls failed with -EAGAIN by max_waits / max_waits_per_key */
};
void rpc_get_stats(struct rpc *r, struct rpc_stats *out);

#endif
