/* test_options.c - option values: sizes, numbers, fstab-only options, API discovery and the
 * spool directory. */
#include "config.h"

#include "options.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* options_parse on argv (NULL-terminated) with its stderr kept in msg; the options are freed.
 * Returns its result. */
static int parse_args(char **argv, char *msg, size_t msglen)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options o;
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    if (tmp)
        dup2(fileno(tmp), 2);
    int rc = options_parse(&args, &o);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    msg[0] = '\0';
    if (tmp) {
        rewind(tmp);
        size_t n = fread(msg, 1, msglen - 1, tmp);
        msg[n] = '\0';
        fclose(tmp);
    }
    options_free(&o);
    fuse_opt_free_args(&args);
    return rc;
}

/* A bad value: refused, with one line that names the option and the value. */
static void check_refused(const char *opt, const char *name, const char *value)
{
    char *argv[] = {"ipfsfs", (char *)opt, "/mnt", NULL};
    char msg[512], want[128];
    int rc = parse_args(argv, msg, sizeof msg);
    CHECK_EQ_INT(rc, -1);
    snprintf(want, sizeof want, "invalid %s '%s' (", name, value);
    if (!strstr(msg, want) || strchr(msg, '\n') != msg + strlen(msg) - 1) {
        unit_failures++;
        fprintf(stderr, "%s: message \"%s\", wanted one line with \"%s\"\n", opt, msg, want);
    }
}

int main(void)
{
    size_t v;
    CHECK_EQ_INT(parse_size("4096", &v), 0);
    CHECK_EQ_INT(v, 4096);
    CHECK_EQ_INT(parse_size("64M", &v), 0);
    CHECK_EQ_INT(v, 64u << 20);
    CHECK_EQ_INT(parse_size("1G", &v), 0);
    CHECK_EQ_INT(v, 1u << 30);
    CHECK_EQ_INT(parse_size("8MiB", &v), 0);
    CHECK_EQ_INT(v, 8u << 20);
    CHECK_EQ_INT(parse_size("256k", &v), 0);
    CHECK_EQ_INT(v, 256u << 10);
    CHECK_EQ_INT(parse_size("", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("-1", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("12Q", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("12Mx", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("99999999999999999999", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("99999999999T", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("1.5G", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("64 M", &v), -EINVAL);
    CHECK_EQ_INT(parse_size(" 64M", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("+64M", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("64Mi", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("64MBx", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("0x10", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("2gb", &v), 0);
    CHECK_EQ_INT(v, 2ull << 30);
    CHECK_EQ_INT(parse_size("1TiB", &v), 0);
    CHECK_EQ_INT(v, 1ull << 40);

    /* Whole numbers: all of the text, in range. */
    long n = 42;
    CHECK_EQ_INT(parse_number("30", 1, 86400, &n), 0);
    CHECK_EQ_INT(n, 30);
    CHECK_EQ_INT(parse_number("0", 0, 86400, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(parse_number("-1", -1, 1, &n), 0);
    CHECK_EQ_INT(n, -1);
    CHECK_EQ_INT(parse_number("007", 0, 10, &n), 0);
    CHECK_EQ_INT(n, 7);
    n = 42;
    CHECK_EQ_INT(parse_number("5s", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("10x", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("1.5", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("-", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number(" 5", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("5 ", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("+5", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("0x10", 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("--5", -10, 10, &n), -EINVAL);
    CHECK_EQ_INT(parse_number(NULL, 1, 86400, &n), -EINVAL);
    CHECK_EQ_INT(parse_number("0", 1, 86400, &n), -ERANGE);
    CHECK_EQ_INT(parse_number("-5", 0, 86400, &n), -ERANGE);
    CHECK_EQ_INT(parse_number("86401", 1, 86400, &n), -ERANGE);
    CHECK_EQ_INT(parse_number("99999999999999999999", 1, 86400, &n), -ERANGE);
    CHECK_EQ_INT(parse_number("-99999999999999999999", 1, 86400, &n), -ERANGE);
    CHECK_EQ_INT(n, 42); /* untouched by a refusal */

    /* Every numeric option refuses what is not wholly a number in its range (fuse_opt's
     * sscanf took "5s" as 5 and "-5" as 4294967291), as --opt and as -o opt, naming the option
     * and the value. */
    {
        static const struct {
            const char *opt, *name, *value;
        } bad[] = {
            {"--timeout=5s", "--timeout", "5s"},
            {"--timeout=10x", "--timeout", "10x"},
            {"--timeout=1.5", "--timeout", "1.5"},
            {"--timeout=0", "--timeout", "0"},
            {"--timeout=-5", "--timeout", "-5"},
            {"--timeout=", "--timeout", ""},
            {"--timeout=86401", "--timeout", "86401"},
            {"--timeout=4294967297", "--timeout", "4294967297"},
            {"-otimeout=5s", "--timeout", "5s"},
            {"--unmount-wait=-5", "--unmount-wait", "-5"},
            {"--unmount-wait=5s", "--unmount-wait", "5s"},
            {"--unmount-wait=86401", "--unmount-wait", "86401"},
            {"-ounmount-wait=1.5", "--unmount-wait", "1.5"},
            {"--cid-version=1x", "--cid-version", "1x"},
            {"--cid-version=2", "--cid-version", "2"},
            {"--cid-version=-2", "--cid-version", "-2"},
            {"--cid-version=", "--cid-version", ""},
            {"-ocid-version=0.5", "--cid-version", "0.5"},
            {"--replication=2x", "--replication", "2x"},
            {"--replication=+2", "--replication", "+2"},
            {"--replication= 2", "--replication", " 2"},
            {"--replication=1:3s", "--replication", "1:3s"},
            {"--cache-size=1.5G", "--cache-size", "1.5G"},
            {"--cache-size=64MBx", "--cache-size", "64MBx"},
            {"--dir-cache=64 M", "--dir-cache", "64 M"},
            {"--readahead=8Mx", "--readahead", "8Mx"},
            {"--readahead=-8M", "--readahead", "-8M"},
            {"--store-size=10GiBs", "--store-size", "10GiBs"},
            {"-ostore-size=1.5G", "--store-size", "1.5G"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            check_refused(bad[i].opt, bad[i].name, bad[i].value);
        /* The range of each is said. */
        char *argv1[] = {"ipfsfs", "--unmount-wait=-5", "/mnt", NULL};
        char msg[512];
        CHECK_EQ_INT(parse_args(argv1, msg, sizeof msg), -1);
        CHECK(strstr(msg, "from 0 to 86400") != NULL);
        char *argv2[] = {"ipfsfs", "--timeout=0", "/mnt", NULL};
        CHECK_EQ_INT(parse_args(argv2, msg, sizeof msg), -1);
        CHECK(strstr(msg, "from 1 to 86400") != NULL);
        char *argv3[] = {"ipfsfs", "--replication=2", "--unmount-wait=0", "--cid-version=1",
                         "--cache-size=2GiB", "--store-size=1g", "-o", "timeout=86400",
                         "/mnt", NULL};
        CHECK_EQ_INT(parse_args(argv3, msg, sizeof msg), 0);
        CHECK_EQ_STR(msg, "");
    }
    {
        char *argv[] = {"ipfsfs", "--timeout=1", "--unmount-wait=0", "-o", "cid-version=0",
                        "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(6, argv);
        struct options o;
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK_EQ_INT(o.timeout, 1);
        CHECK_EQ_INT(o.unmount_wait, 0);
        CHECK_EQ_INT(o.cid_version, 0);
        options_free(&o);
        fuse_opt_free_args(&args);
        char *argv2[] = {"ipfsfs", "/mnt", NULL};
        struct fuse_args args2 = FUSE_ARGS_INIT(2, argv2);
        CHECK_EQ_INT(options_parse(&args2, &o), 0);
        CHECK_EQ_INT(o.timeout, 30);
        CHECK_EQ_INT(o.unmount_wait, 60);
        CHECK_EQ_INT(o.cid_version, -1); /* the node's */
        options_free(&o);
        fuse_opt_free_args(&args2);
    }

    /* fstab-only options are dropped, x-systemd.NAME[=VALUE] among them (fuse_opt matches a
     * prefix only for a template ending in '='); FUSE's own stay, and gateway URLs still
     * follow gateway=. */
    {
        char *argv[] = {"ipfsfs", "ipfs", "/mnt", "-o",
                        "x-systemd.automount,x-systemd.requires=foo.service,"
                        "x-systemd.mount-timeout=30,_netdev,ro,x-systemd.idle-timeout=60,"
                        "gateway=http://a.example,http://b.example,x-systemd.after=x.target,"
                        "nofail,comment=x-systemd.automount,x-systemd.",
                        "-ox-systemd.device-timeout=5s", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(6, argv);
        struct options o;
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK_EQ_INT(o.n_gateways, 2);
        bool ro = false;
        for (int i = 0; i < args.argc; i++) {
            CHECK(strstr(args.argv[i], "x-systemd") == NULL);
            CHECK(strstr(args.argv[i], "_netdev") == NULL);
            if (strstr(args.argv[i], "ro"))
                ro = true;
        }
        CHECK(ro);
        options_free(&o);
        fuse_opt_free_args(&args);
        /* Only that prefix: another option stays for libfuse (which refuses it). */
        char *argv2[] = {"ipfsfs", "-o", "x-systemdfoo,systemd.automount", "/mnt", NULL};
        struct fuse_args args2 = FUSE_ARGS_INIT(4, argv2);
        CHECK_EQ_INT(options_parse(&args2, &o), 0);
        bool kept = false;
        for (int i = 0; i < args2.argc; i++)
            if (strstr(args2.argv[i], "x-systemdfoo,systemd.automount"))
                kept = true;
        CHECK(kept);
        options_free(&o);
        fuse_opt_free_args(&args2);
    }

    /* Discovery order: explicit, $IPFS_PATH/api (trimmed), default. */
    const char *src;
    char *ma = discover_api("/ip4/1.2.3.4/tcp/1", &src);
    CHECK_EQ_STR(ma, "/ip4/1.2.3.4/tcp/1");
    CHECK_EQ_STR(src, "--api");
    free(ma);
    char dir[] = "/tmp/ipfsfs-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/api", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("/ip4/127.0.0.1/tcp/4242/http\n", f);
        fclose(f);
    }
    setenv("IPFS_PATH", dir, 1);
    ma = discover_api(NULL, &src);
    CHECK_EQ_STR(ma, "/ip4/127.0.0.1/tcp/4242/http");
    CHECK_EQ_STR(src, "$IPFS_PATH/api");
    free(ma);
    unlink(path);
    ma = discover_api(NULL, &src);
    CHECK_EQ_STR(ma, "/ip4/127.0.0.1/tcp/5001");
    free(ma);
    rmdir(dir);

    /* The proxy is only what the user gives; the insecure secret only when asked. */
    {
        char *argv[] = {"ipfsfs", "--proxy=http://proxy.example:3128", "-o",
                        "api-auth-insecure,timeout=7", "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(5, argv);
        struct options o;
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK_EQ_STR(o.proxy, "http://proxy.example:3128");
        CHECK_EQ_INT(o.api_auth_insecure, 1);
        CHECK_EQ_INT(o.timeout, 7);
        options_free(&o);
        fuse_opt_free_args(&args);
    }
    {
        char *argv[] = {"ipfsfs", "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(2, argv);
        struct options o;
        setenv("http_proxy", "http://env-proxy.example:1", 1);
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK(o.proxy == NULL);
        CHECK_EQ_INT(o.api_auth_insecure, 0);
        options_free(&o);
        fuse_opt_free_args(&args);
        unsetenv("http_proxy");
    }

    /* The spool directory: where it came from, and refused unless it takes files. */
    {
        char sdir[] = "/tmp/ipfsfs-spool-test-XXXXXX";
        CHECK(mkdtemp(sdir) != NULL);
        char opt[128], file[128], missing[128];
        snprintf(opt, sizeof opt, "--spool-dir=%s", sdir);
        snprintf(file, sizeof file, "%s/file", sdir);
        snprintf(missing, sizeof missing, "%s/missing", sdir);
        char *argv[] = {"ipfsfs", opt, "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        struct options o;
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK_EQ_STR(o.spool_dir, sdir);
        CHECK_EQ_STR(o.spool_dir_from, "--spool-dir");
        CHECK_EQ_INT(options_check_spool_dir(&o), 0);
        /* Nothing left behind by the check. */
        CHECK(rmdir(sdir) == 0 && mkdir(sdir, 0700) == 0);
        char *given = o.spool_dir;
        o.spool_dir = missing;
        CHECK_EQ_INT(options_check_spool_dir(&o), -1);
        FILE *ff = fopen(file, "w");
        CHECK(ff != NULL);
        if (ff)
            fclose(ff);
        o.spool_dir = file;
        CHECK_EQ_INT(options_check_spool_dir(&o), -1);
        /* Mode bits do not stop root: a directory that is not writable is then on a read-only
         * filesystem (/proc takes no file either). */
        if (geteuid() != 0) {
            CHECK(chmod(sdir, 0500) == 0);
            o.spool_dir = sdir;
            CHECK_EQ_INT(options_check_spool_dir(&o), -1);
            CHECK(chmod(sdir, 0700) == 0);
        }
        o.spool_dir = "/proc";
        CHECK_EQ_INT(options_check_spool_dir(&o), -1);
        o.spool_dir = given;
        options_free(&o);
        fuse_opt_free_args(&args);
        unlink(file);
        rmdir(sdir);

        char *argv2[] = {"ipfsfs", "/mnt", NULL};
        struct fuse_args args2 = FUSE_ARGS_INIT(2, argv2);
        setenv("TMPDIR", sdir, 1);
        CHECK_EQ_INT(options_parse(&args2, &o), 0);
        CHECK_EQ_STR(o.spool_dir, sdir);
        CHECK_EQ_STR(o.spool_dir_from, "$TMPDIR");
        CHECK_EQ_INT(options_check_spool_dir(&o), -1); /* removed just above */
        options_free(&o);
        fuse_opt_free_args(&args2);
        unsetenv("TMPDIR");
    }
    {
        /* --mfs-root is cleaned as Kubo cleans MFS paths: one folder, one spelling (the
         * default store's name, and so the refusal of a second mount, follow it). */
        static const char *const roots[][2] = {
            {"/dd", "/dd"},        {"/dd/", "/dd"},       {"//dd", "/dd"},
            {"/dd/.", "/dd"},      {"/dd/../dd", "/dd"},  {"/", "/"},
            {"//", "/"},           {"/..", "/"},          {"/a/b/../../c/", "/c"},
            {"/a//b/./c", "/a/b/c"}, {"/a/..b/c..", "/a/..b/c.."}, {"/./.", "/"},
        };
        for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
            char opt[64];
            snprintf(opt, sizeof opt, "--mfs-root=%s", roots[i][0]);
            char *argv[] = {"ipfsfs", opt, "/mnt", NULL};
            struct fuse_args args = FUSE_ARGS_INIT(3, argv);
            struct options o;
            CHECK_EQ_INT(options_parse(&args, &o), 0);
            CHECK_EQ_STR(o.mfs_root, roots[i][1]);
            options_free(&o);
            fuse_opt_free_args(&args);
        }
    }
    return unit_done("test_options");
}
