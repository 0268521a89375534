/* fuzz_multiaddr.c - multiaddr_parse on arbitrary text (the api file and --api are user or
 * node supplied).
 *
 * Properties: on success base_url is an http:// or https:// URL without a trailing slash,
 * ip_family is 0, 4 or 6, and a unix socket path is absolute and fits sockaddr_un; on failure
 * nothing is allocated and the error text is a NUL-terminated string within its buffer. The
 * error buffer size varies with the input so truncation is exercised too.
 */
#include "config.h"

#include "fuzz.h"
#include "multiaddr.h"

#include <errno.h>
#include <string.h>
#include <sys/un.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t errlens[] = {0, 1, 7, 256};
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t errlen = errlens[size % 4];
    char *err = errlen ? malloc(errlen) : NULL;
    if (errlen && !err) {
        free(s);
        return 0;
    }
    if (err)
        memset(err, 'X', errlen);

    struct api_endpoint ep;
    int rc = multiaddr_parse(s, &ep, err, errlen);
    if (rc == 0) {
        FUZZ_CHECK(ep.base_url != NULL, "success without a base_url");
        size_t n = strlen(ep.base_url);
        FUZZ_CHECK(strncmp(ep.base_url, "http://", 7) == 0 ||
                       strncmp(ep.base_url, "https://", 8) == 0,
                   "base_url '%s'", ep.base_url);
        FUZZ_CHECK(ep.base_url[n - 1] != '/', "base_url '%s' ends with '/'", ep.base_url);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK((unsigned char)ep.base_url[i] > 0x20 && (unsigned char)ep.base_url[i] < 0x7f,
                       "base_url has byte 0x%02x", (unsigned char)ep.base_url[i]);
        FUZZ_CHECK(ep.ip_family == 0 || ep.ip_family == 4 || ep.ip_family == 6, "ip_family %d",
                   ep.ip_family);
        if (ep.unix_path) {
            FUZZ_CHECK(ep.unix_path[0] == '/', "unix path '%s' is relative", ep.unix_path);
            FUZZ_CHECK(strlen(ep.unix_path) < sizeof(((struct sockaddr_un *)0)->sun_path),
                       "unix path of %zu bytes", strlen(ep.unix_path));
        }
        api_endpoint_free(&ep);
        FUZZ_CHECK(ep.base_url == NULL && ep.unix_path == NULL, "free left pointers");
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
        FUZZ_CHECK(ep.base_url == NULL && ep.unix_path == NULL, "failure left allocations");
        if (err)
            FUZZ_CHECK(memchr(err, '\0', errlen) != NULL, "error text not NUL-terminated");
        if (err && errlen > 1)
            FUZZ_CHECK(err[0] != '\0', "failure without a reason");
    }
    free(err);
    free(s);
    return 0;
}
