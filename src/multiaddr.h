/* multiaddr.h - turn the node's API multiaddr into something libcurl can reach.
 * Pure logic, no I/O. */
#ifndef IPFSFS_MULTIADDR_H
#define IPFSFS_MULTIADDR_H

#include <stdbool.h>
#include <stddef.h>

struct api_endpoint {
    char *base_url;  /* "http://127.0.0.1:5001", "https://[::1]:5001", "http://localhost" (unix);
                        no trailing slash; malloc'd */
    char *unix_path; /* socket path for /unix/..., else NULL; malloc'd */
    int ip_family;   /* 0 = any, 4 = /dns4 or /ip4, 6 = /dns6 or /ip6 */
};

/* Parse a textual multiaddr such as /ip4/127.0.0.1/tcp/5001/http. Leading/trailing whitespace is
 * trimmed. Supported: /ip4, /ip6 (optionally after /ip6zone/Z), /dns, /dns4, /dns6 followed by
 * /tcp/PORT, then optionally /http, /https or /tls/http (later components are ignored except that
 * https or tls select https://); and /unix/<absolute path>. Returns 0, or -EINVAL with a human
 * readable reason written to err (if err is not NULL). */
int multiaddr_parse(const char *ma, struct api_endpoint *out, char *err, size_t errlen);

void api_endpoint_free(struct api_endpoint *ep);

/* True if what is sent to ep cannot be read on the way: https, a unix socket, or plain http to
 * a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.x.x, localhost). Pure. */
bool api_endpoint_private(const struct api_endpoint *ep);

#endif
