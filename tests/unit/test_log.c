/* test_log.c - log lines cannot be forged: control characters in any argument (escaped or
 * not by the caller) never reach the output raw, and log_safe escapes backslashes too. */
#include "config.h"

#include "log.h"
#include "unit.h"

#include <stdio.h>
#include <unistd.h>

/* Run one log call with stderr going to a file; returns what was written (static buffer). */
static const char *captured(void (*fn)(void))
{
    static char out[4096];
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    if (saved < 0 || !f) {
        fprintf(stderr, "cannot capture stderr\n");
        exit(99);
    }
    dup2(fileno(f), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static void log_raw_newline(void)
{
    /* As a caller that forgot log_safe would: a hostile string straight into the format. */
    log_warn("cannot parse %s", "x\nipfsfs: error: forged line\r\x1b[2J");
}

static void log_escaped(void)
{
    const char *name = "evil\nname\\x0a";
    char safe[64];
    log_warn("name %s", log_safe(name, strlen(name), safe, sizeof safe));
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

int main(void)
{
    log_init(LOG_LVL_WARN, false);
    const char *out = captured(log_raw_newline);
    CHECK_EQ_INT(count_char(out, '\n'), 1); /* one line: the one log_msg ends it with */
    CHECK(strchr(out, '\r') == NULL && strchr(out, '\x1b') == NULL);
    CHECK(strstr(out, "x\\x0aipfsfs: error: forged line\\x0d\\x1b[2J") != NULL);

    out = captured(log_escaped);
    CHECK_EQ_INT(count_char(out, '\n'), 1);
    /* log_safe escaped the newline and the backslash; the second pass leaves that alone. */
    CHECK(strstr(out, "name evil\\x0aname\\x5cx0a\n") != NULL);

    char buf[8];
    CHECK_EQ_STR(log_safe("abcdefghij", 10, buf, sizeof buf), "abc"); /* cut to fit */
    return unit_done("test_log");
}
