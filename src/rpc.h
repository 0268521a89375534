/* rpc.h - HTTP transport to the node's RPC API (/api/v0), over libcurl.
 *
 * Every call is a POST with bounded waits. Easy handles are pooled so connections are kept alive
 * and reused across calls; any thread may call at any time. Errors come back as -errno with a
 * human-readable reason; the mapping from node messages to errno lives here so every caller
 * agrees on it (see rpc_classify_error()).
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
};

struct rpc_arg {
    const char *key;
    const char *value; /* NULL for a bare boolean flag "key=true" */
};

/* Where the response body goes. Return 0 to continue, or -errno to abort the transfer (that
 * errno is returned by the call; -ECANCELED is not counted as an error in the stats). A sink may
 * block for a while (flow control): the stall_ms clock restarts when it returns. */
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
     * (uploads) set stall_ms instead: the call fails only when no byte moved for that long. */
    unsigned timeout_ms;
    unsigned stall_ms;
    bool no_node_timeout;     /* do not send timeout= to the node */
    const struct rpc_upload *upload;
};

/* A collected reply. */
struct rpc_buf {
    char *data; /* NUL-terminated, malloc'd */
    size_t len;
    size_t max; /* refuse bodies larger than this (-EMSGSIZE); 0 = 16 MiB */
};

int rpc_global_init(void);
void rpc_global_cleanup(void);

int rpc_new(const struct rpc_config *cfg, struct rpc **out);
void rpc_free(struct rpc *r);

/* Run command cmd ("cat", "files/stat", ...) with the given query arguments. The body goes to
 * sink on success (HTTP 200 with no stream-error trailer). On failure returns -errno and, if
 * err is not NULL, writes the reason (the node's message when it gave one). */
int rpc_call(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
             const struct rpc_call_opts *opts, rpc_sink_fn sink, void *ud, char *err,
             size_t errlen);

/* Convenience: collect the body into buf (buf->data freed by the caller with free()). */
int rpc_call_buf(struct rpc *r, const char *cmd, const struct rpc_arg *args, size_t nargs,
                 const struct rpc_call_opts *opts, struct rpc_buf *buf, char *err, size_t errlen);

/* Map a node error message (Kubo or js-ipfs wording) to an errno. Pure. */
int rpc_classify_error(const char *msg);

/* Extract the message from an error body: JSON {"Message"} / {"message"} when it parses, else the
 * text itself (trimmed). Writes into out. Pure. */
void rpc_error_message(const char *body, size_t len, bool is_json, char *out, size_t outlen);

/* Counters for --stats. */
struct rpc_stats {
    uint64_t requests, errors, bytes_in, bytes_out;
    int64_t in_flight;
};
void rpc_get_stats(struct rpc *r, struct rpc_stats *out);

#endif
