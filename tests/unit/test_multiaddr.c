/* test_multiaddr.c - API multiaddr to URL. */
#include "config.h"

#include "multiaddr.h"
#include "unit.h"

#include <errno.h>

static void ok(const char *ma, const char *url, const char *unix_path, int family)
{
    struct api_endpoint ep;
    char err[256];
    int r = multiaddr_parse(ma, &ep, err, sizeof err);

    if (r != 0)
        fprintf(stderr, "'%s' failed: %s\n", ma, err);
    CHECK_EQ_INT(r, 0);
    if (r != 0)
        return;
    CHECK_EQ_STR(ep.base_url, url);
    if (unix_path)
        CHECK_EQ_STR(ep.unix_path, unix_path);
    else
        CHECK(ep.unix_path == NULL);
    CHECK_EQ_INT(ep.ip_family, family);
    api_endpoint_free(&ep);
    CHECK(ep.base_url == NULL && ep.unix_path == NULL);
}

/* Expect failure with an error message containing want. */
static void bad(const char *ma, const char *want)
{
    struct api_endpoint ep;
    char err[256];
    int r = multiaddr_parse(ma, &ep, err, sizeof err);

    CHECK_EQ_INT(r, -EINVAL);
    CHECK(ep.base_url == NULL && ep.unix_path == NULL);
    if (r == 0) {
        fprintf(stderr, "'%s' accepted as %s\n", ma, ep.base_url);
        api_endpoint_free(&ep);
        return;
    }
    if (!strstr(err, want)) {
        fprintf(stderr, "'%s': error '%s' does not contain '%s'\n", ma, err, want);
        CHECK(0);
    }
    /* NULL err buffer is allowed */
    CHECK_EQ_INT(multiaddr_parse(ma, &ep, NULL, 0), -EINVAL);
}

static void test_ip4(void)
{
    ok("/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001", NULL, 4);
    ok("/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001", NULL, 4);
    ok("/ip4/127.0.0.1/tcp/5001\n", "http://127.0.0.1:5001", NULL, 4);
    ok("  /ip4/127.0.0.1/tcp/5001/http\r\n", "http://127.0.0.1:5001", NULL, 4);
    ok("/ip4/127.0.0.1/tcp/5001/", "http://127.0.0.1:5001", NULL, 4);
    ok("/ip4/10.1.2.3/tcp/1", "http://10.1.2.3:1", NULL, 4);
    ok("/ip4/0.0.0.0/tcp/65535", "http://0.0.0.0:65535", NULL, 4);
    ok("/ip4/192.168.1.10/tcp/5001/https", "https://192.168.1.10:5001", NULL, 4);
    ok("/ip4/192.168.1.10/tcp/443/tls/http", "https://192.168.1.10:443", NULL, 4);
    ok("/ip4/192.168.1.10/tcp/443/tls/sni/example.com/http", "https://192.168.1.10:443", NULL, 4);
    ok("/ip4/127.0.0.1/tcp/5001/http/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf",
       "http://127.0.0.1:5001", NULL, 4);
    /* a p2p id that happens to spell "tls" is a value, not the protocol */
    ok("/ip4/127.0.0.1/tcp/5001/p2p/tls", "http://127.0.0.1:5001", NULL, 4);

    bad("/ip4/1.2.3.4", "missing /tcp/PORT after /ip4/1.2.3.4");
    bad("/ip4/1.2.3.4/", "missing /tcp/PORT after /ip4/1.2.3.4");
    bad("/ip4", "missing address after /ip4");
    bad("/ip4/x/tcp/5001", "invalid IPv4 address 'x'");
    bad("/ip4/1.2.3/tcp/5001", "invalid IPv4 address '1.2.3'");
    bad("/ip4/256.1.1.1/tcp/5001", "invalid IPv4 address '256.1.1.1'");
    bad("/ip4/::1/tcp/5001", "invalid IPv4 address '::1'");
    bad("/ip4/1.2.3.4/udp/5001", "unsupported protocol 'udp' (need /tcp/PORT)");
    bad("/ip4/1.2.3.4/udp/4001/quic-v1", "unsupported protocol 'udp'");
    bad("/ip4/1.2.3.4/tcp", "missing port");
    bad("/ip4/1.2.3.4/tcp/99999", "invalid port '99999'");
    bad("/ip4/1.2.3.4/tcp/65536", "invalid port '65536'");
    bad("/ip4/1.2.3.4/tcp/0", "invalid port '0'");
    bad("/ip4/1.2.3.4/tcp/-1", "invalid port '-1'");
    bad("/ip4/1.2.3.4/tcp/+80", "invalid port '+80'");
    bad("/ip4/1.2.3.4/tcp/80x", "invalid port '80x'");
    bad("/ip4/1.2.3.4/tcp/0x50", "invalid port '0x50'");
    bad("/ip4/1.2.3.4/tcp/99999999999999999999999", "invalid port");
    bad("/ip4//tcp/5001", "empty");
    bad("/ip4/1.2.3.4/tcp/5001//http", "empty");
}

static void test_ip6(void)
{
    ok("/ip6/::1/tcp/5001", "http://[::1]:5001", NULL, 6);
    ok("/ip6/::1/tcp/5001/http", "http://[::1]:5001", NULL, 6);
    ok("/ip6/2001:db8::42/tcp/8080/https", "https://[2001:db8::42]:8080", NULL, 6);
    ok("/ip6/::ffff:127.0.0.1/tcp/5001", "http://[::ffff:127.0.0.1]:5001", NULL, 6);
    ok("/ip6zone/eth0/ip6/fe80::1/tcp/5001", "http://[fe80::1%25eth0]:5001", NULL, 6);
    ok("/ip6zone/eth0/ip6/fe80::1/tcp/5001/tls/http", "https://[fe80::1%25eth0]:5001", NULL, 6);

    bad("/ip6/127.0.0.1/tcp/5001", "invalid IPv6 address '127.0.0.1'");
    bad("/ip6/[::1]/tcp/5001", "invalid IPv6 address '[::1]'");
    bad("/ip6/::1", "missing /tcp/PORT after /ip6/::1");
    bad("/ip6zone/eth0", "must be followed by /ip6");
    bad("/ip6zone/eth0/ip4/1.2.3.4/tcp/1", "must be followed by /ip6");
    bad("/ip6zone", "missing zone");
    bad("/ip6zone/et%h0/ip6/fe80::1/tcp/5001", "invalid IPv6 zone");
}

static void test_dns(void)
{
    ok("/dns/localhost/tcp/5001", "http://localhost:5001", NULL, 0);
    ok("/dns4/ipfs.example.com/tcp/5001/http", "http://ipfs.example.com:5001", NULL, 4);
    ok("/dns6/ipfs.example.com/tcp/5001", "http://ipfs.example.com:5001", NULL, 6);
    ok("/dns/node-1.local./tcp/443/https", "https://node-1.local.:443", NULL, 0);
    ok("/dns4/a/tcp/80/tls/http/p2p/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR", "https://a:80",
       NULL, 4);

    bad("/dns/exa_mple.com/tcp/5001", "invalid hostname 'exa_mple.com'");
    bad("/dns/-bad.com/tcp/5001", "invalid hostname");
    bad("/dns/bad..com/tcp/5001", "invalid hostname");
    bad("/dns/.com/tcp/5001", "invalid hostname");
    bad("/dns/a@b/tcp/5001", "invalid hostname");
    bad("/dns4/host", "missing /tcp/PORT after /dns4/host");
    bad("/dns6", "missing address after /dns6");

    /* 253 characters are allowed, 254 not */
    char name[300], ma[400];
    memset(name, 'a', sizeof name);
    for (int i = 50; i < 300; i += 51)
        name[i] = '.';
    name[253] = '\0';
    snprintf(ma, sizeof ma, "/dns/%s/tcp/1", name);
    char url[400];
    snprintf(url, sizeof url, "http://%s:1", name);
    ok(ma, url, NULL, 0);
    memset(name, 'a', sizeof name);
    for (int i = 50; i < 300; i += 51)
        name[i] = '.';
    name[254] = '\0';
    snprintf(ma, sizeof ma, "/dns/%s/tcp/1", name);
    bad(ma, "invalid hostname");
    /* labels are at most 63 characters */
    memset(name, 'a', 64);
    name[64] = '\0';
    snprintf(ma, sizeof ma, "/dns/%s/tcp/1", name);
    bad(ma, "invalid hostname");
}

static void test_unix(void)
{
    ok("/unix/run/ipfs.sock", "http://localhost", "/run/ipfs.sock", 0);
    ok("/unix/run/ipfs.sock\n", "http://localhost", "/run/ipfs.sock", 0);
    ok("/unix/%2Frun%2Fipfs.sock", "http://localhost", "/run/ipfs.sock", 0);
    ok("/unix/%2frun%2fipfs.sock", "http://localhost", "/run/ipfs.sock", 0);
    ok("/unix/tmp/ipfs%20api.sock", "http://localhost", "/tmp/ipfs api.sock", 0);
    ok("/unix/sock", "http://localhost", "/sock", 0);

    bad("/unix", "missing socket path");
    bad("/unix/", "missing socket path");
    bad("/unix/run/%2", "invalid percent-encoding");
    bad("/unix/run/%zz", "invalid percent-encoding");
    bad("/unix/run/%00x", "NUL");

    char ma[300];
    memcpy(ma, "/unix/", 6);
    memset(ma + 6, 'a', 200);
    ma[206] = '\0';
    bad(ma, "too long");
}

static void test_general(void)
{
    bad("", "empty multiaddr");
    bad("   \n", "empty multiaddr");
    bad("/", "empty multiaddr");
    bad("ip4/127.0.0.1/tcp/5001", "multiaddr must start with '/'");
    bad("http://127.0.0.1:5001", "multiaddr must start with '/'");
    bad("/ip4/127.0.0.1 /tcp/5001", "invalid character");
    bad("/ip4/127.0.0.1/tcp/5001\n/http", "invalid character");
    bad("/udp/1.2.3.4", "unsupported protocol 'udp'");
    bad("/dnsaddr/bootstrap.libp2p.io", "unsupported protocol 'dnsaddr'");
    bad("/p2p/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR", "unsupported protocol 'p2p'");
    bad("/IP4/127.0.0.1/tcp/5001", "unsupported protocol 'IP4'");
    bad("//ip4/127.0.0.1/tcp/5001", "empty");

    struct api_endpoint ep;
    char err[256];
    CHECK_EQ_INT(multiaddr_parse(NULL, &ep, err, sizeof err), -EINVAL);
    /* a tiny error buffer is truncated, not overrun */
    char tiny[8];
    CHECK_EQ_INT(multiaddr_parse("/ip4/x/tcp/1", &ep, tiny, sizeof tiny), -EINVAL);
    CHECK_EQ_INT(strlen(tiny), 7);

    char *huge = malloc(5000);
    CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'a', 4999);
        huge[0] = '/';
        huge[4999] = '\0';
        bad(huge, "too long");
        free(huge);
    }

    /* freeing twice or a zeroed endpoint is harmless */
    CHECK_EQ_INT(multiaddr_parse("/ip4/127.0.0.1/tcp/5001", &ep, err, sizeof err), 0);
    api_endpoint_free(&ep);
    api_endpoint_free(&ep);
    api_endpoint_free(NULL);
}

/* Where an API secret may go over plain http: loopback only; https and unix sockets always. */
static bool private_of(const char *ma)
{
    struct api_endpoint ep;
    char err[128];
    bool v;

    if (multiaddr_parse(ma, &ep, err, sizeof err) != 0) {
        fprintf(stderr, "cannot parse %s: %s\n", ma, err);
        return false;
    }
    v = api_endpoint_private(&ep);
    api_endpoint_free(&ep);
    return v;
}

static void test_private(void)
{
    CHECK(private_of("/ip4/127.0.0.1/tcp/5001"));
    CHECK(private_of("/ip4/127.3.2.1/tcp/5001/http"));
    CHECK(private_of("/ip6/::1/tcp/5001"));
    CHECK(private_of("/ip6/::ffff:127.0.0.1/tcp/5001"));
    CHECK(private_of("/dns4/localhost/tcp/5001"));
    CHECK(private_of("/dns/LOCALHOST/tcp/5001"));
    CHECK(private_of("/unix/tmp/api.sock"));
    CHECK(private_of("/ip4/10.0.0.5/tcp/5001/https"));
    CHECK(private_of("/dns4/node.example.com/tcp/443/tls/http"));
    CHECK(!private_of("/ip4/10.0.0.5/tcp/5001"));
    CHECK(!private_of("/ip4/128.0.0.1/tcp/5001"));
    CHECK(!private_of("/ip6/::2/tcp/5001"));
    CHECK(!private_of("/ip6zone/eth0/ip6/fe80::1/tcp/5001"));
    CHECK(!private_of("/dns4/localhost.example.com/tcp/5001"));
    CHECK(!private_of("/dns4/node.example.com/tcp/5001/http"));
    CHECK(!api_endpoint_private(NULL));
}

int main(void)
{
    test_private();
    test_ip4();
    test_ip6();
    test_dns();
    test_unix();
    test_general();
    return unit_done("test_multiaddr");
}
